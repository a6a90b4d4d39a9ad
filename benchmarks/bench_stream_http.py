"""Streaming latency per frame: POST /stream/step (one frame per request, keep-alive) beside the same step graph
called directly in this process.

    python benchmarks/bench_stream_http.py --onnx model.onnx [--steps 2000] [--repeats 3]

`--onnx` needs its step graph beside it (model.step.onnx, written by `eeg2arm export`). Frames are real: the
shared eyes-open/closed windows joined along time, one (C, F) frame per call, so every `pool`-th frame completes a
group and runs the model while the others are only buffered. The client (requests, one connection) shares the
machine's cores with the server. Prints one table: per-frame latency in ms, the median over repeats of each
repeat's median / p99, all frames and split by whether the frame completed a group.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import requests

from eeg2arm.streamer import Streamer
from export.step import OnnxStep, step_path
from serving.local_server import REPO, serve

DATA = REPO.parent / "shared" / "data" / "bandpower" / "X.npy"
WARMUP = 200


def timed(call: Callable[[int], object], steps: int) -> np.ndarray:
    """Latency in ms of call(i) for i in range(steps), after WARMUP calls."""
    for i in range(WARMUP):
        call(i)
    ms = np.empty(steps)
    for i in range(steps):
        t0 = time.perf_counter()
        call(WARMUP + i)
        ms[i] = (time.perf_counter() - t0) * 1e3
    return ms


def summary(runs: list[np.ndarray], pool: int) -> tuple[float, float, float, float]:
    """(median all, median group-completing, median buffered-only, p99 all), each the median over runs.

    Frame index i (counted from the stream start, WARMUP being a multiple of pool) completes a group when
    (i + 1) % pool == 0."""
    def med(f: Callable[[np.ndarray], float]) -> float:
        return statistics.median(f(r) for r in runs)

    group = lambda r: (np.arange(len(r)) + WARMUP + 1) % pool == 0  # noqa: E731
    return (med(np.median), med(lambda r: float(np.median(r[group(r)]))),
            med(lambda r: float(np.median(r[~group(r)])) if pool > 1 else float("nan")),
            med(lambda r: float(np.percentile(r, 99))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--onnx", type=Path, required=True, help="model exported with `eeg2arm export` (step graph beside)")
    p.add_argument("--steps", type=int, default=2000, help="timed frames per repeat")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if not step_path(args.onnx).is_file():
        raise SystemExit(f"{step_path(args.onnx)} not found: export a model that can stream (no --no-stream)")

    X = np.load(DATA)  # (N, C, F, T) real band power
    frames = np.ascontiguousarray(np.concatenate(list(X), axis=-1).astype(np.float32))  # (C, F, N*T)
    n = frames.shape[-1]
    step = OnnxStep(step_path(args.onnx), device="cpu")
    pool = step.config.cnn_time_pool
    group = np.ascontiguousarray(frames[None, ..., :pool])  # (1, C, F, pool)
    assert WARMUP % pool == 0

    rows = []
    state = step.initial_state()
    rows.append(("OnnxStep call (one group)", [timed(lambda i: step(group, state), args.steps)
                                               for _ in range(args.repeats)], 1))
    runs = []
    for _ in range(args.repeats):
        streamer = Streamer(step)
        runs.append(timed(lambda i: streamer.push(frames[..., i % n]), args.steps))
    rows.append(("Streamer.push direct (one frame)", runs, pool))

    env = {"EEG2ARM_ONNX": str(args.onnx.resolve())}
    with tempfile.TemporaryDirectory() as tmp, serve(env, Path(tmp) / "serve.log") as url, \
            requests.Session() as http:
        runs = []
        for _ in range(args.repeats):
            session = http.post(f"{url}/stream/open", json={}, timeout=10).json()["session"]
            bodies = [json.dumps({"session": session, "frames": frames[..., i].tolist()}).encode() for i in range(n)]

            def post(i: int) -> None:
                r = http.post(f"{url}/stream/step", data=bodies[i % n],
                              headers={"Content-Type": "application/json"}, timeout=10)
                r.raise_for_status()

            runs.append(timed(post, args.steps))
            http.post(f"{url}/stream/close", json={"session": session}, timeout=10).raise_for_status()
        rows.append(("HTTP POST /stream/step (one frame)", runs, pool))

    print(f"per-frame streaming latency, ms; {args.steps} frames x {args.repeats} repeats (median of repeats), "
          f"pool={pool}, C={frames.shape[0]}, F={frames.shape[1]}")
    print(f"{'path':<36} {'median':>7} {'group':>7} {'buffer':>7} {'p99':>7}")
    for name, runs, row_pool in rows:
        med, grp, buf, p99 = summary(runs, row_pool)
        buffered = "-" if np.isnan(buf) else f"{buf:.3f}"  # the bare step call has no buffering
        print(f"{name:<36} {med:>7.3f} {grp:>7.3f} {buffered:>7} {p99:>7.3f}")


if __name__ == "__main__":
    main()
