"""Measured parity of PyTorch and ONNX Runtime on real windows: max abs error per output, batch size and T."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from eeg2arm.checkpoint import load_model_from_checkpoint, weights_digest
from eeg2arm.config import EEGConfig
from eeg2arm.data import check_windows, load_npy
from eeg2arm.errors import UserInputError
from eeg2arm.ensemble import EEGEnsemble
from eeg2arm.model import EEGModel
from eeg2arm.sample import SAMPLE_X
from eeg2arm.realtime.decoder import streaming_decoder

from .graph import OUTPUT_NAMES, ExportGraph
from .session import OnnxPredictor
from .step import OnnxStep

BATCH_SIZES = (1, 7, 64)
STEP_BATCH = 3  # streams stepped side by side when the step graph's parity is measured


@dataclass(frozen=True)
class ParityRow:
    """Max abs error between PyTorch and ONNX Runtime for one (batch, T)."""

    batch: int
    T: int
    logits: float
    probs: float
    frame_logits: float


def parity_lengths(config: EEGConfig, example_T: int) -> list[int]:
    """The T values to check: the shortest allowed, an odd one, the export example's and 3x the example's."""
    base = max(example_T, config.min_frames)
    odd = base + 1 + base % 2
    return sorted({config.min_frames, odd, base, 3 * base})


def load_parity_windows(x_path: str | Path | None, config: EEGConfig) -> np.ndarray:
    """Real windows (N, C, F, T) to compare on: --x, or the embedded eyes-open/closed sample when it fits."""
    if x_path is None:
        X = load_npy(SAMPLE_X, "embedded sample X")
        if X.shape[1:3] != (config.n_electrodes, config.n_bands):
            raise UserInputError(f"the embedded sample has C={X.shape[1]}, F={X.shape[2]} but this model expects "
                                 f"C={config.n_electrodes}, F={config.n_bands}: pass --x with real windows")
        return check_windows(X, config, "embedded sample X")
    return check_windows(load_npy(x_path, "--x"), config, "--x")


def real_windows(X: np.ndarray, batch: int, T: int) -> np.ndarray:
    """`batch` windows spread over X (so both classes appear), cut or tiled along time to exactly T real frames."""
    idx = np.linspace(0, len(X) - 1, batch).round().astype(int)
    reps = -(-T // X.shape[3])  # ceil: tile whole real windows, then cut
    return np.ascontiguousarray(np.tile(X[idx], (1, 1, 1, reps))[..., :T])  # (batch, C, F, T)


def measure_parity(model: EEGModel | EEGEnsemble, predictor: OnnxPredictor, X: np.ndarray, lengths: list[int],
                   batch_sizes: tuple[int, ...] = BATCH_SIZES) -> list[ParityRow]:
    """Run both runtimes on the same real windows for every (batch, T) and record the max abs error of each output."""
    graph = ExportGraph(model).eval()
    rows = []
    for batch in batch_sizes:
        for T in lengths:
            x = real_windows(X, batch, T)
            with torch.no_grad():
                expected = graph(torch.from_numpy(x))
            got = predictor.run(x)
            errors = {name: float(np.abs(got[name] - ref.numpy()).max()) for name, ref in zip(OUTPUT_NAMES, expected)}
            rows.append(ParityRow(batch, T, **errors))
    return rows


def format_table(rows: list[ParityRow]) -> list[str]:
    lines = [f"{'batch':>5} {'T':>5} {'logits_err':>11} {'probs_err':>11} {'frame_logits_err':>17}"]
    lines += [f"{r.batch:>5} {r.T:>5} {r.logits:>11.2e} {r.probs:>11.2e} {r.frame_logits:>17.2e}" for r in rows]
    return lines


def summarize(rows: list[ParityRow], atol: float, providers: list[str]) -> dict[str, Any]:
    """The parity figures stored in the ONNX metadata."""
    return {"atol": atol, "providers": providers,
            "max_abs_err": {name: max(getattr(r, name) for r in rows) for name in OUTPUT_NAMES},
            "batch_sizes": sorted({r.batch for r in rows}), "lengths": sorted({r.T for r in rows})}


def check_tolerance(rows: list[ParityRow], atol: float) -> None:
    """Raise UserInputError naming the worst output and shape when any error exceeds atol."""
    name, row = max(((n, r) for r in rows for n in OUTPUT_NAMES), key=lambda nr: getattr(nr[1], nr[0]))
    if getattr(row, name) > atol:
        raise UserInputError(f"ONNX parity failed: max abs error of {name} is {getattr(row, name):.2e} at "
                             f"batch={row.batch}, T={row.T}, above --atol {atol:g}")


def compare(model: EEGModel | EEGEnsemble, predictor: OnnxPredictor, X: np.ndarray, lengths: list[int], atol: float,
            echo: Callable[[str], None]) -> list[ParityRow]:
    """Measure parity for BATCH_SIZES x lengths, echo the table, then raise UserInputError if any error > atol."""
    rows = measure_parity(model, predictor, X, lengths)
    for line in format_table(rows):
        echo(line)
    check_tolerance(rows, atol)
    return rows


def check_atol(atol: float) -> None:
    if not (np.isfinite(atol) and atol > 0):
        raise UserInputError(f"--atol must be a positive number, got {atol}")


def run_parity(ckpt: str | Path, onnx_path: str | Path, x_path: str | Path | None = None, atol: float = 1e-4,
               echo: Callable[[str], None] = print) -> list[ParityRow]:
    """`eeg2arm parity`: compare a checkpoint with its export on CPU, echo the table; UserInputError above atol."""
    check_atol(atol)
    model, meta = load_model_from_checkpoint(ckpt)
    predictor = OnnxPredictor(onnx_path, device="cpu")
    if predictor.config != meta["config"]:
        raise UserInputError(f"{onnx_path} was exported from another model (its config differs from {ckpt}'s): "
                             f"export this checkpoint again")
    digest = weights_digest(model)
    if predictor.meta.get("weights_sha256", digest) != digest:
        raise UserInputError(f"{onnx_path} was exported from another checkpoint (its weights differ from {ckpt}'s, "
                             f"e.g. before a calibration): export this checkpoint again")
    X = load_parity_windows(x_path, meta["config"])
    return compare(model, predictor, X, parity_lengths(meta["config"], meta["example_input_shape"][3]), atol, echo)


def real_stream(X: np.ndarray, n_frames: int) -> np.ndarray:
    """A stream (C, F, n_frames) of real frames: the windows of X one after another, repeated as needed."""
    stream = np.concatenate(list(X), axis=-1)  # (C, F, N*T)
    reps = -(-n_frames // stream.shape[-1])
    return np.ascontiguousarray(np.tile(stream, (1, 1, reps))[..., :n_frames])


def compare_step(model: EEGModel | EEGEnsemble, step: OnnxStep, X: np.ndarray, atol: float,
                 echo: Callable[[str], None]) -> dict[str, Any]:
    """Stream real frames through the PyTorch StreamingDecoder and the ONNX step graph, W + 16 steps (past the
    context window) for STEP_BATCH streams at once (each from another window of X), and compare every step's
    logits and probs; UserInputError above atol."""
    c = model.config
    n_steps = c.context + 16
    starts = np.linspace(0, len(X) - 1, STEP_BATCH).round().astype(int)
    frames = torch.from_numpy(np.stack([real_stream(np.roll(X, -s, axis=0), n_steps * c.cnn_time_pool)
                                        for s in starts]))  # (STEP_BATCH, C, F, n)
    decoder = streaming_decoder(model).eval()
    torch_state, onnx_state = decoder.initial_state(STEP_BATCH), step.initial_state(STEP_BATCH)
    err = {"logits": 0.0, "probs": 0.0}
    for i in range(n_steps):
        group = frames[..., i * c.cnn_time_pool:(i + 1) * c.cnn_time_pool]
        with torch.no_grad():
            ref_logits, ref_probs, *torch_state = decoder(group, *torch_state)
        logits, probs, onnx_state = step.run(group.numpy(), onnx_state)
        for name, got, ref in (("logits", logits, ref_logits), ("probs", probs, ref_probs)):
            err[name] = max(err[name], float(np.abs(got - ref.numpy()).max()))
    echo(f"step graph: {n_steps} steps x {STEP_BATCH} streams, max abs error logits {err['logits']:.2e} probs {err['probs']:.2e}")
    worst = max(err, key=err.get)
    if err[worst] > atol:
        raise UserInputError(f"ONNX step graph parity failed: max abs error of {worst} is {err[worst]:.2e} over "
                             f"{n_steps} steps, above --atol {atol:g}")
    return {"atol": atol, "steps": n_steps, "streams": STEP_BATCH, "max_abs_err": err, "providers": step.providers}
