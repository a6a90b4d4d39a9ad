"""Per-decision latency of the streaming step vs recomputing forward_seq over the whole history, PyTorch and ORT.

    python benchmarks/bench_stream.py [--ckpt ckpt.pt] [--repeats 50]

History lengths are in input frames. The model is the checkpoint's, or the default EEGConfig on the embedded
sample's shape (32 electrodes, 4 bands; speed does not depend on the weights). It is exported to a temporary
folder: ONNX Runtime recomputes with the batch graph (its frame_logits over the history) and steps with the step
graph. Frames are real: the embedded eyes-open/closed windows joined along time. Both runtimes use one thread.
Prints one table: median ms over repeats after warm-up. Results: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from eeg2arm import EEGConfig, EEGModel, load_model_from_checkpoint
from eeg2arm.checkpoint import save_checkpoint
from eeg2arm.sample import SAMPLE_X
from eeg2arm.stream import TorchStep
from export.onnx_export import export_onnx
from export.session import OnnxPredictor
from export.step import OnnxStep

HISTORIES = (16, 64, 256, 1024)


def median_ms(fn, repeats: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def exported(ckpt: str | None, folder: Path) -> tuple[EEGModel, OnnxPredictor, OnnxStep]:
    """The model in PyTorch, and its batch and step graphs in ONNX Runtime (CPU, one thread)."""
    if ckpt is None:
        model = EEGModel(EEGConfig(n_classes=2, n_electrodes=32, n_bands=4)).materialize((1, 32, 4, 15)).eval()
        ckpt = folder / "random.pt"
        save_checkpoint(ckpt, model, (1, 32, 4, 15), epoch=0, metrics={})
    model, _ = load_model_from_checkpoint(ckpt)
    result = export_onnx(ckpt, folder / "model.onnx", echo=lambda s: None)
    return model, OnnxPredictor(result.path, device="cpu"), OnnxStep(result.step, device="cpu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        model, predictor, onnx_step = exported(args.ckpt, Path(folder))
    X = np.load(SAMPLE_X)
    stream_np = np.ascontiguousarray(np.concatenate(list(X), axis=-1)[None])  # (1, C, F, 1500) real frames
    stream = torch.from_numpy(stream_np)
    torch_step = TorchStep(model)
    pool = model.config.cnn_time_pool

    print(f"streaming step vs forward_seq recompute, CPU ({platform.processor() or platform.machine()}), 1 thread, "
          f"context W={model.config.context} pooled frames, median of {args.repeats} (ms per decision)")
    print(f"{'history (frames)':>16} | {'torch recompute':>15} | {'torch step':>10} | {'speed-up':>8} | "
          f"{'ORT recompute':>13} | {'ORT step':>8} | {'speed-up':>8}")
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
        print(f"{history:>16} | {t_re:>15.3f} | {t_step:>10.3f} | {t_re / t_step:>7.1f}x | "
              f"{o_re:>13.3f} | {o_step:>8.3f} | {o_re / o_step:>7.1f}x")


if __name__ == "__main__":
    main()
