"""HTTP serving benchmark, one printed table:

1. POST /predict (one real window of JSON per request, closed-loop clients): requests/s, p50 and p99 with 1, 16 and
   64 clients, for eeg2arm's service and for the floors, empty BentoML services with the same signature, settings
   and body (benchmarks/floor_service.py: BentoML as it comes, the reference; and tuned as eeg2arm tunes BentoML).
   The servers run at once and take turns: each round measures every client count on each server, so a burst of
   other work on the machine hits all alike; the table keeps each one's best round (highest req/s; its p50 and p99
   are that round's), the ratios against the reference floor.
2. Streaming, one frame per message on one connection: the round trip of a frame over the WebSocket /stream/ws
   (numpy.save bytes) and over the HTTP session route POST /stream/step (JSON), p50 and p99 (1 worker).

    python benchmarks/bench_http.py --onnx model.onnx [--workers 1,2] [--seconds 3] [--repeats 3]

The client (aiohttp, one process) shares the machine's cores with the servers, as a co-located client would.
Results: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import requests
from websockets.sync.client import connect

from eeg2arm.sample import SAMPLE_X
from serving.local_server import serve
from machine import installed_versions, machine_line  # benchmarks/machine.py (the script's folder)

SERVERS = (("floor: empty BentoML", ("benchmarks.floor_service:Floor",)),
           ("floor, tuned as eeg2arm", ("benchmarks.floor_service:TunedFloor",)),
           ("eeg2arm /predict", ()))


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
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        await asyncio.gather(*(_client(session, url, bodies[c:], time.perf_counter() + 0.5, [], {})
                               for c in range(clients)))  # warm-up: connections, allocator
        t0 = time.perf_counter()
        await asyncio.gather(*(_client(session, url, bodies[c:], t0 + seconds, latencies, errors)
                               for c in range(clients)))
        elapsed = time.perf_counter() - t0
    ms = np.array(latencies) * 1e3
    return len(ms) / elapsed, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), sum(errors.values())


def _best(runs: list[tuple[float, float, float, int]]) -> tuple[float, float, float, int]:
    """The round with the most req/s (its p50 and p99), and the errors of all rounds."""
    best = max(runs, key=lambda r: r[0])
    return (*best[:3], sum(r[3] for r in runs))


def _round_trips(send, n: int) -> tuple[float, float]:
    """(p50, p99) ms of `n` calls of send(i) after 50 of warm-up."""
    for i in range(50):
        send(i)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        send(i)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _streaming(url: str, frames: np.ndarray, n: int) -> list[tuple[str, float, float]]:
    """Per-frame round trips over the WebSocket and over the HTTP session route, one frame per message."""
    messages = []
    for t in range(frames.shape[-1]):
        buf = io.BytesIO()
        np.save(buf, frames[..., t])
        messages.append(buf.getvalue())
    with connect(url.replace("http", "ws", 1) + "/stream/ws", compression=None, proxy=None) as ws:
        ws.recv()
        ws_times = _round_trips(lambda i: (ws.send(messages[i % len(messages)]), ws.recv()), n)
    with requests.Session() as http:
        session = http.post(f"{url}/stream/open", json={}, timeout=10).json()["session"]
        bodies = [json.dumps({"session": session, "frames": frames[..., t].tolist()}) for t in range(frames.shape[-1])]
        headers = {"Content-Type": "application/json"}
        http_times = _round_trips(lambda i: http.post(f"{url}/stream/step", data=bodies[i % len(bodies)],
                                                      headers=headers, timeout=10).raise_for_status(), n)
    return [("WebSocket /stream/ws (.npy)", *ws_times), ("HTTP POST /stream/step (JSON)", *http_times)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--onnx", type=Path, required=True, help="model exported with `eeg2arm export`")
    p.add_argument("--clients", default="1,16,64", help="comma-separated concurrent client counts")
    p.add_argument("--seconds", type=float, default=3.0, help="duration of one measurement")
    p.add_argument("--workers", default="1,2", help="comma-separated EEG2ARM_WORKERS to measure")
    p.add_argument("--repeats", type=int, default=3, help="rounds per configuration (the best is shown)")
    p.add_argument("--frames", type=int, default=2000, help="frames timed per streaming route")
    args = p.parse_args()

    X = np.load(SAMPLE_X).astype(np.float32)  # (N, C, F, T) real band power
    bodies = [json.dumps({"x": w.tolist()}).encode() for w in X]
    clients = [int(c) for c in args.clients.split(",")]
    rows, streaming = [], []
    for workers in args.workers.split(","):
        env = {"EEG2ARM_ONNX": str(args.onnx.resolve()), "EEG2ARM_WORKERS": workers}
        runs: dict[tuple[str, int], list] = {(name, c): [] for name, _ in SERVERS for c in clients}
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            urls = {name: stack.enter_context(serve(env, Path(tmp) / f"{i}.log", args=target))
                    for i, (name, target) in enumerate(SERVERS)}
            for _ in range(args.repeats):
                for c in clients:
                    for name, _ in SERVERS:
                        runs[(name, c)].append(asyncio.run(_load(f"{urls[name]}/predict", bodies, c, args.seconds)))
            if workers == "1":
                streaming = _streaming(urls["eeg2arm /predict"], np.concatenate(list(X[:8]), axis=-1), args.frames)
        rows += [(name, workers, c, _best(runs[(name, c)])) for name, _ in SERVERS for c in clients]

    floor = {(w, c): r for name, w, c, r in rows if name == SERVERS[0][0]}
    print(f"# {time.strftime('%Y-%m-%d')} {machine_line(installed_versions('bentoml', 'onnxruntime'))}")
    print(f"{'server':<24} {'workers':>7} {'clients':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
          f"{'req/s vs floor':>14} {'p50 vs floor':>12}")
    for name, w, c, (rps, p50, p99, err) in rows:
        f_rps, f_p50 = floor[(w, c)][:2]
        print(f"{name:<24} {w:>7} {c:>7} {rps:>7.0f} {p50:>7.2f} {p99:>7.2f} {err:>6} {rps / f_rps:>13.2f}x "
              f"{p50 / f_p50:>11.2f}x")
    print(f"\n{'per-frame round trip, 1 worker':<34} {'p50 ms':>7} {'p99 ms':>7}")
    for name, p50, p99 in streaming:
        print(f"{name:<34} {p50:>7.3f} {p99:>7.3f}")


if __name__ == "__main__":
    main()
