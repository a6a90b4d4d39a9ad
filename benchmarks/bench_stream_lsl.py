"""End-to-end latency of `eeg2arm stream --lsl ... --out-lsl ...` on a live replay, per backend.

    python benchmarks/bench_stream_lsl.py [--ckpt ckpt.pt] [--seconds 60] [--backends ckpt,onnx,server]

mne-lsl's PlayerLSL replays a real recording (EEGMMIDB S001R04.edf: 64 channels, 160 Hz) as a live LSL stream in
chunks of 10 samples (62.5 ms, so that every band-power frame ends on a chunk's last sample), in its own process,
noting local_clock() as it pushes each chunk. For each backend a real `eeg2arm stream` process decodes it (--ckpt:
PyTorch; --onnx: the step graph in ONNX Runtime; --url: `bentoml serve` on the same export, through
serving.client.RemoteStreamer) and publishes its decisions with --out-lsl; this script subscribes to them on a
thread that blocks in liblsl until a decision arrives and notes local_clock() then.

Per decision it reports
- "pushed -> decided": the decision's arrival at the subscriber minus the moment the player pushed the EEG chunk
  whose last sample the decision needs (the sample whose LSL timestamp the decision carries): LSL to the decoder,
  band power, the model step, LSL to the subscriber. With an amplifier that stamps each chunk as it sends it, this
  is what a controller measures as arrival minus timestamp;
- "stamp -> decided": arrival minus the decision's timestamp, as a controller measures it here. PlayerLSL pushes
  each chunk one chunk period before the timestamp it gives the chunk's last sample (it sleeps until one chunk's
  stamp, then pushes the next), so with the player this is about 62.5 ms less ("player lead": stamp minus push).

The model is the checkpoint's (it must record a band-power recipe for 64 EEGMMIDB channels at 160 Hz, e.g. one
trained on `eeg2arm prepare` output of these files), or by default the demo's size (frame_embed 256) with random
weights and that recipe: speed does not depend on the weights. The first 2 s of decisions (the backlog of
connecting) are left out. Results: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import mne
import numpy as np

from eeg2arm import EEGConfig, EEGModel
from eeg2arm.checkpoint import save_checkpoint
from eeg2arm.features import DEFAULT_BANDS
from eeg2arm.realtime.sources import quiet_liblsl
from export.onnx_export import export_onnx
from serving.local_server import serve
from machine import installed_versions, machine_line  # benchmarks/machine.py (the script's folder)

REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO.parent / "shared" / "data" / "raw" / "eegmmidb" / "S001" / "S001R04.edf"
CHUNK = 10  # samples per PlayerLSL push: 62.5 ms at 160 Hz
WARMUP_S = 2.0


def random_checkpoint(folder: Path) -> Path:
    """The demo's model size with random weights and the band-power recipe of the replayed recording."""
    raw = mne.io.read_raw(RECORDING, verbose="error")
    config = EEGConfig(n_classes=2, n_electrodes=len(raw.ch_names), n_bands=len(DEFAULT_BANDS),
                       class_names=("left", "right"), channel_names=tuple(raw.ch_names),
                       band_names=tuple(b[0] for b in DEFAULT_BANDS), band_edges=tuple(b[1:] for b in DEFAULT_BANDS),
                       sfreq=raw.info["sfreq"], frame_window=0.5, frame_step=0.25)
    shape = (1, config.n_electrodes, config.n_bands, 15)
    path = folder / "random.pt"
    save_checkpoint(path, EEGModel(config).materialize(shape).eval(), shape, epoch=0, metrics={})
    return path


class Arrivals(threading.Thread):
    """(timestamp, local_clock() at arrival) of every sample of an LSL stream, in a blocking pull."""

    def __init__(self, name: str):
        super().__init__(daemon=True)
        from mne_lsl.lsl import StreamInlet, resolve_streams

        found = resolve_streams(timeout=60, name=name)
        if not found:
            raise RuntimeError(f"stream {name} did not appear")
        self.inlet = StreamInlet(found[0])
        self.inlet.open_stream(timeout=10)
        self.seen: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        from mne_lsl.lsl import local_clock

        while not self.stop.is_set():
            _, stamp = self.inlet.pull_sample(timeout=0.2)
            if stamp is not None:
                now = local_clock()
                _, more = self.inlet.pull_chunk(timeout=0.0)  # the rest of the chunk came with it
                self.seen.append((float(more[-1]) if len(more) else stamp, now))


PLAYER = """import sys
from mne_lsl.lsl import local_clock
from mne_lsl.player import PlayerLSL
player = PlayerLSL(sys.argv[1], chunk_size=int(sys.argv[2]), name=sys.argv[3], source_id=sys.argv[3]).start()
outlet, pushes = player._outlet, []
push_chunk = outlet.push_chunk
def timed(x, timestamp=0.0, pushThrough=True):  # when each chunk goes out (just before), by its last stamp
    pushes.append((timestamp, local_clock()))
    push_chunk(x, timestamp, pushThrough)
outlet.push_chunk = timed
sys.stdin.read()  # until the benchmark closes our stdin
player.stop()
print("\\n".join(f"push {s!r} {t!r}" for s, t in pushes))"""


def run_backend(args: list[str], seconds: float) -> dict[str, np.ndarray]:
    eeg, out = f"bench-amp-{uuid.uuid4().hex[:8]}", f"bench-dec-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-m", "eeg2arm", "stream", "--lsl", eeg, *args, "--out-lsl", out,
                             "--duration", str(seconds + WARMUP_S), "--lsl-timeout", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    player = None
    try:
        decisions = Arrivals(out)  # subscribed before the EEG exists, so no decision is missed
        decisions.start()
        player = subprocess.Popen([sys.executable, "-c", PLAYER, str(RECORDING), str(CHUNK), eeg],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        stdout, stderr = proc.communicate(timeout=seconds + 120)
        time.sleep(0.5)
        pushed, _ = player.communicate(timeout=30)  # closing its stdin stops it
    finally:
        for p in (proc, player):
            if p is not None:
                p.kill()
    decisions.stop.set()
    decisions.join()
    if proc.returncode != 0:
        raise RuntimeError(f"eeg2arm stream {' '.join(args)} failed:\n{stderr}")
    pushes = np.array([[float(v) for v in line.split()[1:]] for line in pushed.splitlines()
                       if line.startswith("push ")])  # (n_chunks, 2): last sample's stamp, push time
    stamp, arrival = np.array(decisions.seen).T
    keep = stamp >= stamp[0] + WARMUP_S
    stamp, arrival = stamp[keep], arrival[keep]
    right = np.clip(np.searchsorted(pushes[:, 0], stamp), 1, len(pushes) - 1)
    nearest = np.where(np.abs(pushes[right - 1, 0] - stamp) <= np.abs(pushes[right, 0] - stamp), right - 1, right)
    matched = np.abs(pushes[nearest, 0] - stamp) < 1e-3  # decision stamps carry the clock offset (~10 µs here)
    inside = re.search(r"latency_ms p50=([\d.]+) p99=([\d.]+)", stdout)  # stream's own: chunk in -> decision out
    return {"e2e": (arrival - pushes[nearest, 1])[matched] * 1e3, "stamp": (arrival - stamp) * 1e3,
            "lead": (pushes[:, 0] - pushes[:, 1]) * 1e3, "unmatched": int((~matched).sum()),
            "inside": (float(inside[1]), float(inside[2]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of decisions per backend (after warm-up)")
    ap.add_argument("--backends", default="ckpt,onnx,server")
    args = ap.parse_args()
    quiet_liblsl()
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        ckpt = Path(args.ckpt) if args.ckpt else random_checkpoint(Path(folder))
        onnx = export_onnx(ckpt, Path(folder) / "model.onnx", check=False, echo=lambda s: None).path
        backends = {"ckpt": ["--ckpt", str(ckpt), "--device", "cpu"], "onnx": ["--onnx", str(onnx), "--device", "cpu"]}
        if "server" in args.backends:
            url = stack.enter_context(serve({"EEG2ARM_ONNX": str(onnx)}, Path(folder) / "serve.log"))
            backends["server"] = ["--url", url]
        print(f"# {machine_line(installed_versions('torch', 'onnxruntime', 'mne_lsl', 'bentoml'))}")
        print(f"eeg2arm stream --lsl (PlayerLSL, {RECORDING.name}, chunks of {CHUNK}) --out-lsl, {args.seconds:g} s "
              f"per backend (ms)")
        print(f"{'backend':>8} | {'decisions':>9} | {'pushed->decided p50':>19} | {'p99':>6} | {'max':>6} | "
              f"{'in stream p50':>13} | {'p99':>6} | {'stamp->decided p50':>18} | {'player lead p50':>15}")
        for name in args.backends.split(","):
            r = run_backend(backends[name], args.seconds)
            p50, p99 = np.percentile(r["e2e"], [50, 99])
            print(f"{name:>8} | {len(r['e2e']):>9} | {p50:>19.2f} | {p99:>6.2f} | {r['e2e'].max():>6.2f} | "
                  f"{r['inside'][0]:>13.2f} | {r['inside'][1]:>6.2f} | "
                  f"{np.median(r['stamp']):>18.2f} | {np.median(r['lead']):>15.2f}"
                  + (f"  ({r['unmatched']} decisions matched no pushed chunk)" if r["unmatched"] else ""))


if __name__ == "__main__":
    main()
