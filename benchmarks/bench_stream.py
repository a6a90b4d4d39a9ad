"""Per-decision latency of the streaming step vs recomputing forward_seq over the whole history.

    python benchmarks/bench_stream.py [--ckpt ckpt.pt] [--repeats 50]

History lengths are in input frames. The model is the checkpoint's, or the default EEGConfig on the embedded
sample's shape (32 electrodes, 4 bands; speed does not depend on the weights). Frames are real: the embedded
eyes-open/closed windows joined along time. Prints one table: median ms over repeats after warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from eeg2arm import EEGConfig, EEGModel, load_model_from_checkpoint
from eeg2arm.sample import SAMPLE_X
from eeg2arm.stream import StreamingDecoder

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.ckpt:
        model, _ = load_model_from_checkpoint(args.ckpt)
    else:
        model = EEGModel(EEGConfig(n_classes=2, n_electrodes=32, n_bands=4)).materialize((1, 32, 4, 15)).eval()
    X = np.load(SAMPLE_X)
    stream = torch.from_numpy(np.concatenate(list(X), axis=-1)[None])  # (1, C, F, 1500) real frames
    decoder = StreamingDecoder(model)
    pool = decoder.pool

    print(f"streaming step vs forward_seq recompute, PyTorch CPU 1 thread, context W={model.config.context} "
          f"pooled frames, median of {args.repeats}")
    print(f"{'history (frames)':>16} | {'recompute ms':>12} | {'step ms':>8} | {'speed-up':>8}")
    with torch.inference_mode():
        for history in HISTORIES:
            state = decoder.initial_state(1)
            for j in range(history // pool):  # bring the state to this history
                _, _, *state = decoder(stream[..., j * pool:(j + 1) * pool], *state)
            group = stream[..., history:history + pool]
            recompute = median_ms(lambda: model.forward_seq(stream[..., :history + pool]), args.repeats)
            step = median_ms(lambda: decoder(group, *state), args.repeats)
            print(f"{history:>16} | {recompute:>12.3f} | {step:>8.3f} | {recompute / step:>7.1f}x")


if __name__ == "__main__":
    main()
