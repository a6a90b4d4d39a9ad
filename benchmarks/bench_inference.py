"""PyTorch eager vs ONNX Runtime on CPU: median time of one call, batch {1, 64}, T {example, 4x example}.

    python benchmarks/bench_inference.py --ckpt ckpt.pt [--onnx model.onnx] [--repeats 50]

Without --onnx the checkpoint is first exported (parity checked) into a temporary folder. Both runtimes get the
same real windows (the embedded eyes-open/closed sample, or --x, tiled along T). PyTorch runs `model(x)` under
inference_mode, as `eeg2arm infer --ckpt` does; ONNX Runtime runs through OnnxPredictor.run (input validation
included, as `eeg2arm infer --onnx` does) and, for reference, the bare session.run. The three calls alternate within each repeat, so a busy machine
slows them alike. Results: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import onnxruntime as ort
import torch

from eeg2arm.checkpoint import load_model_from_checkpoint
from export.onnx_export import export_onnx
from export.parity import load_parity_windows, real_windows
from export.session import OnnxPredictor
from machine import machine_line  # benchmarks/machine.py (the script's folder)


def median_ms(fns: list[Callable[[], object]], repeats: int, warmup: int) -> list[float]:
    """Median ms per call of each fn; all are called within every repeat, so both runtimes see the same load."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for r in range(repeats):
        for k in range(len(fns)):
            i = (r + k) % len(fns)  # rotate the order: no runtime always comes right after another
            t0 = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - t0)
    return [1e3 * statistics.median(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path, required=True, help="checkpoint made by eeg2arm train")
    ap.add_argument("--onnx", type=Path, default=None, help="its export (default: export to a temp folder)")
    ap.add_argument("--x", type=Path, default=None, help="real windows X.npy (default: the embedded sample)")
    ap.add_argument("--repeats", type=int, default=50, help="timed calls per cell (>= 30)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed calls first")
    ap.add_argument("--ort-threads", type=int, default=1, help="ONNX Runtime intra_op_num_threads (helper default 1)")
    ap.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = ap.parse_args()
    if args.repeats < 30:
        ap.error("--repeats must be >= 30")
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)

    model, meta = load_model_from_checkpoint(args.ckpt)
    config, example_T = meta["config"], meta["example_input_shape"][3]
    X = load_parity_windows(args.x, config)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = args.onnx or export_onnx(args.ckpt, Path(tmp) / "model.onnx", echo=lambda s: None).path
        predictor = OnnxPredictor(onnx_path, device="cpu", intra_op_num_threads=args.ort_threads)

    n_params = sum(p.numel() for p in model.parameters())
    threads = (f"{torch.get_num_threads()} torch threads, {args.ort_threads} ORT intra-op threads "
               f"({predictor.providers[0]})")
    print(f"# {machine_line({'torch': torch.__version__, 'onnxruntime': ort.__version__}, threads)} | "
          f"frame_embed={config.frame_embed}, {n_params} parameters | median of {args.repeats} after {args.warmup} "
          f"warm-up")
    print(f"{'batch':>5} {'T':>4} {'torch_ms':>9} {'ort_ms':>8} {'ort_raw_ms':>10} {'ort/torch':>9}")
    for batch in (1, 64):
        for T in (example_T, 4 * example_T):
            x = real_windows(X, batch, T)
            xt = torch.from_numpy(x)
            with torch.inference_mode():
                t_torch, t_ort, t_raw = median_ms([lambda: model(xt), lambda: predictor.run(x),
                                                   lambda: predictor.session.run(None, {"x": x})],
                                                  args.repeats, args.warmup)
            print(f"{batch:>5} {T:>4} {t_torch:>9.3f} {t_ort:>8.3f} {t_raw:>10.3f} {t_ort / t_torch:>9.2f}")


if __name__ == "__main__":
    main()
