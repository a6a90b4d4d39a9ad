"""Checkpoint -> ONNX with free batch and time axes, the config in its metadata and measured parity.

Exporter: `torch.onnx.export(..., dynamo=True, dynamic_shapes=...)` (torch.export + onnxscript). It is chosen
because it keeps T truly symbolic: the causal ALiBi bias is built from the runtime T (`arange(T)`), and the
exporter carries that through as a shape expression, so a graph exported at one T answers at any T >= min_frames
(the output reads `frame_logits (batch, time // pool, K)`). The legacy TorchScript exporter traces Python ints, so
T-dependent values can be frozen at the example's T; it is also deprecated in torch 2.x.

Two exporter facts shape the code: an example dim of size 1 is specialized (fixed to 1) in the graph, so the example
is batch 2 and T >= 2; and the export runs under torch.no_grad(), not inference_mode.
"""
from __future__ import annotations

import contextlib
import logging
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import onnx
import torch
from torch.export import Dim

from eeg2arm.atomic import atomic_write, check_writable
from eeg2arm.checkpoint import load_model_from_checkpoint, weights_digest
from eeg2arm.errors import UserInputError
from eeg2arm.ensemble import EEGEnsemble
from eeg2arm.model import EEGModel
from eeg2arm.realtime.decoder import streaming_decoder

from .graph import INPUT_NAME, OUTPUT_NAMES, ExportGraph
from .metadata import set_metadata
from .parity import ParityRow, check_atol, compare, compare_step, load_parity_windows, parity_lengths, summarize
from .session import OnnxPredictor
from .step import STEP_INPUTS, STEP_OUTPUTS, OnnxStep, step_path

MIN_OPSET = 18  # the dynamo exporter's lowest opset; below it, it silently falls back to 18
EXPORTER = f"torch.onnx.export(dynamo=True), torch {torch.__version__}"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    opset: int
    parity: list[ParityRow] | None  # None with check=False
    step: Path | None = None  # the streaming step graph, when written


def check_output_path(out: Path, *inputs: str | Path | None) -> None:
    """UserInputError unless `out` is a .onnx file path in an existing, writable folder and none of `inputs`."""
    if out.is_dir():
        raise UserInputError(f"--out {out} is a folder: give a file path such as {out / 'model.onnx'}")
    if out.suffix != ".onnx":
        raise UserInputError(f"--out {out} must end in .onnx (the step graph is written beside it as "
                             f"{out.stem}.step.onnx): e.g. --out {out.with_suffix('.onnx')}")
    for path in inputs:
        if path is not None and out.resolve() == Path(path).resolve():
            raise UserInputError(f"--out {out} is also an input of this export ({path}): choose another file name")
    check_writable(out, "--out")


def check_opset(opset: int | None) -> None:
    newest = onnx.defs.onnx_opset_version()
    if opset is not None and not MIN_OPSET <= opset <= newest:
        raise UserInputError(f"--opset {opset} is not supported: use {MIN_OPSET} to {newest}, or leave it out "
                             f"for the exporter's default")


def opset_of(proto: onnx.ModelProto) -> int:
    """The model's version of the default ONNX operator set."""
    return next(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx"))


@contextlib.contextmanager
def exporter_quiet() -> Iterator[None]:
    """Mute the exporter's log and warning chatter (e.g. 'torchvision is not installed'); errors still raise."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def to_onnx(model: EEGModel | EEGEnsemble, example_input_shape: tuple[int, ...],
            opset: int | None = None) -> onnx.ModelProto:
    """Export ExportGraph(model) with dynamic `batch` and `time` axes; UserInputError if the exporter fails."""
    config = model.config
    _, C, F, T = example_input_shape
    example = torch.zeros(2, C, F, max(T, config.min_frames, 2))  # batch and T >= 2: size 1 would be specialized
    dynamic = {INPUT_NAME: {0: Dim("batch"), 3: Dim("time", min=config.min_frames)}}
    return run_exporter(ExportGraph(model), (example,), dynamic, [INPUT_NAME], OUTPUT_NAMES, opset)


def to_step_onnx(model: EEGModel | EEGEnsemble, opset: int | None = None) -> onnx.ModelProto:
    """Export streaming_decoder(model), the streaming step graph, with a dynamic batch axis shared by the state."""
    c = model.config
    decoder = streaming_decoder(model)
    state = decoder.initial_state(2)  # batch 2: a size-1 example dim would be specialized
    frames = torch.zeros(2, c.n_electrodes, c.n_bands, c.cnn_time_pool)
    batch = Dim("batch")
    dynamic = {"frames": {0: batch}, "conv1": {0: batch}, "conv2": {0: batch}, "keys": {1: batch},
               "values": {1: batch}, "seen": None}
    return run_exporter(decoder, (frames, *state), dynamic, STEP_INPUTS, STEP_OUTPUTS, opset)


def run_exporter(module: torch.nn.Module, args: tuple[torch.Tensor, ...], dynamic: dict[str, Any],
                 input_names: Sequence[str], output_names: Sequence[str], opset: int | None) -> onnx.ModelProto:
    """torch.onnx.export(dynamo=True) under no_grad, checked; UserInputError if the exporter or checker fails."""
    try:
        with torch.no_grad(), exporter_quiet():
            program = torch.onnx.export(module.eval(), args, dynamo=True, dynamic_shapes=dynamic,
                                        input_names=list(input_names), output_names=list(output_names),
                                        opset_version=opset, verbose=False)
        proto = program.model_proto
        onnx.checker.check_model(proto, full_check=True)
    except (torch.onnx.OnnxExporterError, onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        first = str(e).strip().splitlines()[0][:300]
        raise UserInputError(f"ONNX export failed ({type(e).__name__}: {first}); try another --opset") from None
    made = opset_of(proto)
    if opset is not None and made != opset:
        raise UserInputError(f"the exporter could not produce --opset {opset} (it made opset {made}): "
                             f"use {made} or leave --opset out")
    return proto


def save_onnx(proto: onnx.ModelProto, out: Path) -> None:
    try:
        atomic_write(out, lambda tmp: onnx.save(proto, tmp))
    except OSError as e:
        raise UserInputError(f"cannot write {out} ({e.strerror or e}): choose another --out") from None


def export_onnx(ckpt: str | Path, out: str | Path, opset: int | None = None, atol: float = 1e-4,
                check: bool = True, x_path: str | Path | None = None, stream: bool = True,
                echo: Callable[[str], None] = print) -> ExportResult:
    """Export a checkpoint to `out` (written atomically, only after parity passed when `check`).

    With `stream` (and a model that can stream: config.streamable) the step graph goes to `step_path(out)` as
    well, with its own measured parity; both graphs carry the same `export_id`, so a reader can tell a step graph
    left over from an earlier export (the service and `eeg2arm stream` refuse one), and a step graph of an earlier
    export beside `out` is removed when none is written. Every user input is validated before the exporter
    runs, so a bad file gets one clean line.
    """
    out = Path(out)
    check_output_path(out, ckpt, x_path)
    check_opset(opset)
    check_atol(atol)
    model, meta = load_model_from_checkpoint(ckpt)
    config = meta["config"]
    X = load_parity_windows(x_path, config) if check else None

    proto = to_onnx(model, meta["example_input_shape"], opset)
    fields: dict[str, Any] = {"version": meta["version"], "example_input_shape": list(meta["example_input_shape"]),
                              "exporter": EXPORTER, "export_id": uuid.uuid4().hex,
                              "weights_sha256": weights_digest(model)}
    set_metadata(proto, config, **fields)
    rows = None
    if check:
        predictor = OnnxPredictor(proto.SerializeToString(), device="cpu")  # parity is defined on CPU, fp32
        lengths = parity_lengths(config, meta["example_input_shape"][3])
        rows = compare(model, predictor, X, lengths, atol, echo)
        set_metadata(proto, config, **fields, parity=summarize(rows, atol, predictor.providers))
    step_proto = None
    if stream and config.streamable:
        step_proto = to_step_onnx(model, opset)
        set_metadata(step_proto, config, **fields, graph="step")
        if check:
            step_parity = compare_step(model, OnnxStep(step_proto.SerializeToString(), device="cpu"), X, atol, echo)
            set_metadata(step_proto, config, **fields, graph="step", parity=step_parity)
    elif stream:
        echo("no step graph: a model with --normalize, a clip length or no context window cannot stream")
    if step_proto is not None:  # the step graph first: a failed second write leaves a mismatched export_id
        save_onnx(step_proto, step_path(out))
    elif step_path(out).is_file():
        step_path(out).unlink()  # an earlier export's step graph would stream other weights
    save_onnx(proto, out)
    return ExportResult(out, opset_of(proto), rows, step_path(out) if step_proto is not None else None)
