"""HTTP serving benchmark: requests/s and p50/p99 latency of POST /predict (one real window per request)
with 1, 16 and 64 concurrent clients, adaptive batching on vs off, beside a direct ONNX Runtime call.

    python benchmarks/bench_http.py --onnx model.onnx [--seconds 4] [--repeats 3]

Each configuration runs `repeats` times for `seconds`; the table shows the median of the repeats. The client
(aiohttp, one process) shares the machine's cores with the server, as a co-located client would.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

from serving.local_server import REPO, serve

DATA = REPO.parent / "shared" / "data" / "bandpower" / "X.npy"


async def _client(session: aiohttp.ClientSession, url: str, bodies: list[bytes], stop_at: float,
                  latencies: list[float], errors: dict[int, int]) -> None:
    i = 0
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        async with session.post(url, data=bodies[i % len(bodies)],
                                headers={"Content-Type": "application/json"}) as r:
            await r.read()
        if r.status == 200:
            latencies.append(time.perf_counter() - t0)
        else:
            errors[r.status] = errors.get(r.status, 0) + 1
        i += 1


async def _load(url: str, bodies: list[bytes], clients: int, seconds: float) -> tuple[float, float, float, int]:
    """(req/s, p50 ms, p99 ms, errors) of `clients` closed-loop clients for `seconds`."""
    latencies: list[float] = []
    errors: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(_client(session, url, bodies[c:], time.perf_counter() + 0.5, [], {})
                               for c in range(clients)))  # warm-up: connections, batching optimizer
        t0 = time.perf_counter()
        await asyncio.gather(*(_client(session, url, bodies[c:], t0 + seconds, latencies, errors)
                               for c in range(clients)))
        elapsed = time.perf_counter() - t0
    ms = np.array(latencies) * 1e3
    return len(ms) / elapsed, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), sum(errors.values())


def _direct(onnx_path: Path, X: np.ndarray, seconds: float) -> tuple[float, float, float, int]:
    """One window per call to the same kind of session the service uses, in this process."""
    from export.session import make_session

    session = make_session(onnx_path)
    latencies = []
    stop_at = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        session.run(["logits", "probs"], {"x": X[i % len(X)][None]})
        latencies.append(time.perf_counter() - t0)
        i += 1
    ms = np.array(latencies) * 1e3
    return len(ms) / seconds, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), 0


def _median(runs: list[tuple[float, float, float, int]]) -> tuple[float, float, float, int]:
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
            statistics.median(r[2] for r in runs), sum(r[3] for r in runs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--onnx", type=Path, required=True, help="model exported with `eeg2arm export`")
    p.add_argument("--clients", default="1,16,64", help="comma-separated concurrent client counts")
    p.add_argument("--seconds", type=float, default=4.0, help="duration of one measurement")
    p.add_argument("--repeats", type=int, default=3, help="measurements per configuration (median shown)")
    p.add_argument("--latency-ms", type=int, default=None, help="override the batching latency budget")
    args = p.parse_args()

    X = np.load(DATA).astype(np.float32)  # (N, C, F, T) real band power
    bodies = [json.dumps({"x": w.tolist()}).encode() for w in X]
    clients = [int(c) for c in args.clients.split(",")]
    rows = [("ONNX Runtime direct (B=1)", 1, _median([_direct(args.onnx, X, args.seconds)
                                                       for _ in range(args.repeats)]))]
    for batching in ("1", "0"):
        env = {"EEG2ARM_ONNX": str(args.onnx.resolve()), "EEG2ARM_BATCHING": batching}
        if args.latency_ms is not None:
            env["EEG2ARM_MAX_LATENCY_MS"] = str(args.latency_ms)
        with tempfile.TemporaryDirectory() as tmp, serve(env, Path(tmp) / "serve.log") as url:
            for c in clients:
                runs = [asyncio.run(_load(f"{url}/predict", bodies, c, args.seconds)) for _ in range(args.repeats)]
                rows.append((f"HTTP /predict, batching {'on' if batching == '1' else 'off'}", c, _median(runs)))

    print(f"{'mode':<34} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for mode, c, (rps, p50, p99, err) in rows:
        print(f"{mode:<34} {c:>7} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f} {err:>7}")


if __name__ == "__main__":
    main()
