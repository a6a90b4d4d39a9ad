"""Per-decision latency of the streaming step vs recomputing forward_seq over the whole history, in PyTorch and
ONNX Runtime, and end to end through the server's /stream/ws session.

    python benchmarks/bench_stream.py [--ckpt ckpt.pt] [--repeats 200] [--no-server]

History lengths are in input frames. The model is the checkpoint's, or the default EEGConfig on the embedded
sample's shape (32 electrodes, 4 bands; speed does not depend on the weights). It is exported to a temporary
folder: ONNX Runtime recomputes with the batch graph (its frame_logits over the history) and steps with the step
graph. "torch step" is TorchStep, the decoder behind `eeg2arm stream --ckpt`. Both runtimes use one thread, as
`eeg2arm stream` does. "server" is `bentoml serve` on that export: a session is brought to the history, then the
client (RemoteStreamer, that of `eeg2arm stream --url`) times the WebSocket round trip of each frame that completes
a group (the frame a decision comes back for), on one connection sharing the machine's cores with the server. Frames
are real: the embedded eyes-open/closed windows joined along time. Prints one table: median ms over repeats after
warm-up (server: also p99). Results: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from eeg2arm import EEGConfig, EEGModel, load_model_from_checkpoint
from eeg2arm.checkpoint import save_checkpoint
from eeg2arm.sample import SAMPLE_X
from eeg2arm.realtime.decoder import TorchStep
from export.onnx_export import export_onnx
from export.session import OnnxPredictor
from export.step import OnnxStep
from serving.client import RemoteStreamer
from serving.local_server import serve
from machine import installed_versions, machine_line  # benchmarks/machine.py (the script's folder)

HISTORIES = (16, 64, 256, 1024)


def times_ms(fn: Callable[[], object], repeats: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    return statistics.median(times_ms(fn, repeats))


def exported(ckpt: str | None, folder: Path) -> tuple[EEGModel, Path]:
    """The model in PyTorch, and the path of its export (batch graph, step graph beside it)."""
    if ckpt is None:
        model = EEGModel(EEGConfig(n_classes=2, n_electrodes=32, n_bands=4)).materialize((1, 32, 4, 15)).eval()
        ckpt = folder / "random.pt"
        save_checkpoint(ckpt, model, (1, 32, 4, 15), epoch=0, metrics={})
    model, _ = load_model_from_checkpoint(ckpt)
    return model, export_onnx(ckpt, folder / "model.onnx", echo=lambda s: None).path


def server_decision_ms(url: str, frames: np.ndarray, history: int, pool: int, repeats: int) -> list[float]:
    """Round trips of the frames that complete a group, after `history` frames; frames (C, F, T). The client is
    RemoteStreamer, as `eeg2arm stream --url` uses it: one keep-alive connection, one session."""
    stream = RemoteStreamer(url)
    for start in range(0, history, 256):
        stream.push(frames[..., start:min(start + 256, history)])
    times = []
    for i in range(repeats + 5):
        group = np.take(frames, range(history + i * pool, history + (i + 1) * pool), axis=-1, mode="wrap")
        if pool > 1:
            stream.push(group[..., :-1])  # buffered only
        t0 = time.perf_counter()
        assert len(stream.push(group[..., -1:])) == 1  # completes a group: one decision
        times.append((time.perf_counter() - t0) * 1e3)
    stream.close()
    return times[5:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--no-server", action="store_true", help="leave out the end-to-end server column")
    args = ap.parse_args()
    torch.set_num_threads(1)
    X = np.load(SAMPLE_X)
    stream_np = np.ascontiguousarray(np.concatenate(list(X), axis=-1)[None])  # (1, C, F, 1500) real frames
    stream = torch.from_numpy(stream_np)

    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        model, onnx_path = exported(args.ckpt, Path(folder))
        predictor, onnx_step = OnnxPredictor(onnx_path, device="cpu"), OnnxStep(
            onnx_path.with_name("model.step.onnx"), device="cpu")
        torch_step, pool = TorchStep(model), model.config.cnn_time_pool
        url = None if args.no_server else stack.enter_context(
            serve({"EEG2ARM_ONNX": str(onnx_path)}, Path(folder) / "serve.log"))

        print(f"# {machine_line({'torch': torch.__version__, **installed_versions('onnxruntime')}, '1 thread')}")
        print(f"streaming step vs forward_seq recompute, context W={model.config.context} pooled frames, median of "
              f"{args.repeats} (ms per decision)")
        print(f"{'history (frames)':>16} | {'torch recompute':>15} | {'torch step':>10} | {'speed-up':>8} | "
              f"{'ORT recompute':>13} | {'ORT step':>8} | {'speed-up':>8} | {'server p50':>10} | {'server p99':>10}")
        for history in HISTORIES:
            state, ort_state = torch_step.initial_state(), onnx_step.initial_state()
            for j in range(history // pool):  # bring both states to this history
                group_np = np.ascontiguousarray(stream_np[..., j * pool:(j + 1) * pool])
                _, state = torch_step(group_np, state)
                _, ort_state = onnx_step(group_np, ort_state)
            group_np = np.ascontiguousarray(stream_np[..., history:history + pool])
            window = stream_np[..., :history + pool]
            with torch.inference_mode():
                t_re = median_ms(lambda: model.forward_seq(stream[..., :history + pool]), args.repeats)
            t_step = median_ms(lambda: torch_step(group_np, state), args.repeats)
            o_re = median_ms(lambda: predictor.run(window), args.repeats)
            o_step = median_ms(lambda: onnx_step(group_np, ort_state), args.repeats)
            s50 = s99 = float("nan")
            if url is not None:
                ms = server_decision_ms(url, stream_np[0], history, pool, args.repeats)
                s50, s99 = np.percentile(ms, [50, 99])
            print(f"{history:>16} | {t_re:>15.3f} | {t_step:>10.3f} | {t_re / t_step:>7.1f}x | "
                  f"{o_re:>13.3f} | {o_step:>8.3f} | {o_re / o_step:>7.1f}x | {s50:>10.3f} | {s99:>10.3f}")


if __name__ == "__main__":
    main()
