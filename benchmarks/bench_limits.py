"""What the largest requests the default limits allow cost the server: the peak memory growth of the worker
process (its VmHWM over its resident memory before the request) and the time to answer, one table.

    python benchmarks/bench_limits.py --onnx model.onnx

Each request goes to a fresh `bentoml serve` (one worker), after one small request as warm-up. The limits are
serving/settings.py's defaults (EEG2ARM_MAX_T, _MAX_WINDOWS, _MAX_FRAMES, _MAX_STREAM_FRAMES, _MAX_BODY_MB); the
frames are random band power of the model's C and F. Results: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from export.metadata import read_onnx_metadata
from serving.local_server import peak_rss_kb, serve, worker_process
from serving.settings import MiB, Settings
from machine import installed_versions, machine_line  # benchmarks/machine.py (the script's folder)


def npy(X: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, X)
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--onnx", type=Path, required=True, help="model exported with `eeg2arm export`")
    args = p.parse_args()
    config, _ = read_onnx_metadata(args.onnx)
    C, F, s = config.n_electrodes, config.n_bands, Settings()
    rng = np.random.default_rng(0)
    longest = rng.random((s.max_frames // s.max_T, C, F, s.max_T), dtype=np.float32)  # the T^2 attention's worst
    most = rng.random((s.max_windows, C, F, s.max_frames // s.max_windows), dtype=np.float32)
    stream = rng.random((C, F, s.max_stream_frames), dtype=np.float32)
    cases = [  # name, route, body, content type
        (f"/predict JSON {longest.shape}", "/predict", json.dumps({"x": longest.tolist()}).encode(), "json"),
        (f"/predict_npy {longest.shape}", "/predict_npy", npy(longest), "octet-stream"),
        (f"/predict_npy {most.shape}", "/predict_npy", npy(most), "octet-stream"),
        (f"/stream/step JSON {stream.shape}", "/stream/step", None, "json"),
    ]
    rows = []
    for name, route, body, kind in cases:
        with tempfile.TemporaryDirectory() as tmp, serve({"EEG2ARM_ONNX": str(args.onnx.resolve())},
                                                         Path(tmp) / "serve.log") as url:
            headers = {"Content-Type": f"application/{kind}"}
            small = requests.post(f"{url}/predict_npy", data=npy(longest[:1, ..., :s.max_T // 4]),
                                  headers={"Content-Type": "application/octet-stream"}, timeout=60)
            small.raise_for_status()
            if route == "/stream/step":
                session = requests.post(f"{url}/stream/open", json={}, timeout=10).json()["session"]
                body = json.dumps({"session": session, "frames": stream.tolist()}).encode()
            worker = worker_process(url)
            before = worker.memory_info().rss // 1024
            t0 = time.perf_counter()
            r = requests.post(url + route, data=body, headers=headers, timeout=120)
            elapsed = time.perf_counter() - t0
            r.raise_for_status()
            rows.append((name, len(body) / MiB, (peak_rss_kb(worker.pid) - before) / 1024, elapsed * 1e3))
    print(f"# {time.strftime('%Y-%m-%d')} {machine_line(installed_versions('bentoml', 'onnxruntime'))}; "
          f"model C={C} F={F} frame_embed={config.frame_embed}; limits max_T={s.max_T} max_windows={s.max_windows} "
          f"max_frames={s.max_frames} max_stream_frames={s.max_stream_frames}")
    print(f"{'largest request':<42} {'body MiB':>8} {'peak RSS growth MB':>18} {'time ms':>8}")
    for name, mib, growth, ms in rows:
        print(f"{name:<42} {mib:>8.1f} {growth:>18.0f} {ms:>8.0f}")


if __name__ == "__main__":
    main()
