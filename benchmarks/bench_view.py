"""What `eeg2arm stream --view` costs the stream: its decision latency without the view, with the view and no page
open, and with the view and ten pages reading it.

    python benchmarks/bench_view.py [--ckpt ckpt.pt] [--seconds 30] [--rounds 2] [--pages 10]

A real `eeg2arm stream` process replays EEGMMIDB S001R04.edf at real speed (64 channels, 160 Hz) and decodes it
with the ONNX step graph; the latency is the stream's own (its summary line: each chunk in -> its decisions out,
the sinks included, so the view's `send` is inside it). The pages are WebSocket clients in this process, each
reading every message until the end. The model is the checkpoint's, or the demo's size with random weights and
that recording's band-power recipe (bench_stream_lsl.py's): speed does not depend on the weights. The runs take
turns within each round, so that another job on the machine weighs on all of them alike. Prints one table (ms).
Results: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from websockets.sync.client import connect

from bench_stream_lsl import RECORDING, random_checkpoint
from export.onnx_export import export_onnx
from machine import installed_versions, machine_line  # benchmarks/machine.py (the script's folder)

SUMMARY = re.compile(r"decisions=(\d+) .*latency_ms p50=([\d.]+) p99=([\d.]+)")
VIEW = re.compile(r"view: (http://\S+/)")


def page(url: str, counts: list[int]) -> None:
    """One page: every message until the stream's end."""
    with connect(url.replace("http", "ws") + "ws", open_timeout=30) as ws:
        while json.loads(ws.recv(timeout=120))["type"] != "end":
            counts.append(1)


def run(onnx: Path, seconds: float, view: bool, pages: int) -> tuple[str, str, str, int]:
    """decisions, p50, p99 of one stream, and the messages its pages received."""
    args = [sys.executable, "-m", "eeg2arm", "stream", "--raw", str(RECORDING), "--onnx", str(onnx), "--duration",
            str(seconds), "--device", "cpu", *(["--view", "--view-port", "0"] if view else [])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    counts: list[int] = []
    readers = []
    if view:
        url = next(m.group(1) for m in map(VIEW.search, proc.stdout) if m)
        readers = [threading.Thread(target=page, args=(url, counts), daemon=True) for _ in range(pages)]
        for reader in readers:
            reader.start()
    out, _ = proc.communicate(timeout=seconds + 120)
    for reader in readers:
        reader.join(timeout=30)
    found = SUMMARY.search(out)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out}")
    return (*found.groups(), len(counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pages", type=int, default=10)
    args = parser.parse_args()
    print(f"# {machine_line(installed_versions('onnxruntime', 'mne_lsl'))}, {args.seconds:g} s of "
          f"{RECORDING.name} at real speed per run, ONNX step graph")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(args.ckpt) if args.ckpt else random_checkpoint(Path(tmp))
        onnx = export_onnx(ckpt, Path(tmp) / "model.onnx", check=False, echo=lambda s: None).path
        print("| round | view | pages | decisions | messages to pages | latency p50 ms | p99 ms |")
        print("|---|---|---|---|---|---|---|")
        for round_ in range(1, args.rounds + 1):
            for view, pages in ((False, 0), (True, 0), (True, args.pages)):
                decisions, p50, p99, messages = run(onnx, args.seconds, view, pages)
                print(f"| {round_} | {'on' if view else 'off'} | {pages if view else '–'} | {decisions} | "
                      f"{messages if view else '–'} | {p50} | {p99} |", flush=True)


if __name__ == "__main__":
    main()
