"""atomic_write's temp files: removed when the writer is interrupted (SIGTERM, Ctrl-C), and a killed writer's
leftovers removed by the next write to the same path. The writers run in real subprocesses, signalled for real."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from eeg2arm.checkpoint import atomic_write, save_checkpoint

WRITER = textwrap.dedent("""
    import os, signal, sys, time
    import torch
    from eeg2arm.checkpoint import atomic_write

    def write(tmp):
        torch.save({"weights": torch.zeros(1000)}, tmp)  # a real checkpoint write, then the signal arrives
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))
        time.sleep(30)

    atomic_write(sys.argv[1], write)
""")


@pytest.mark.parametrize("sig, code", [("SIGTERM", 128 + signal.SIGTERM), ("SIGINT", -signal.SIGINT)])
def test_an_interrupted_write_leaves_the_old_file_and_no_temp_file(tmp_path, sig, code):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"previous good checkpoint")
    done = subprocess.run([sys.executable, "-c", WRITER, str(target), sig], capture_output=True, timeout=60)
    assert done.returncode == code, done.stderr.decode()[-500:]
    assert target.read_bytes() == b"previous good checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_a_killed_writers_temp_file_is_removed_by_the_next_write_and_a_live_ones_kept(tmp_path):
    target = tmp_path / "model.onnx"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".model.onnx.{_pid_of_exited()}.abc123.tmp"
        busy = tmp_path / f".model.onnx.{live.pid}.def456.tmp"
        other = tmp_path / f".other.onnx.{_pid_of_exited()}.ghi789.tmp"  # another target's: not ours to remove
        for p in (stale, busy, other):
            p.write_bytes(b"partial")
        atomic_write(target, lambda tmp: open(tmp, "wb").write(b"new"))
        assert target.read_bytes() == b"new"
        assert not stale.exists() and busy.exists() and other.exists()
    finally:
        live.kill()
        live.wait()


def _pid_of_exited() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_save_checkpoint_cleans_up_after_a_killed_training_run(tmp_path):
    """The checkpoint writer of `eeg2arm train` is atomic_write: a run killed with SIGKILL mid-write leaves its temp
    file, and the next save to the same path removes it."""
    import torch

    from eeg2arm import EEGConfig, EEGModel

    target = tmp_path / "ckpt.pt"
    killed = subprocess.Popen([sys.executable, "-c", WRITER, str(target), "SIGSTOP"])
    try:  # SIGSTOP: it stopped itself inside the write, its temp file on disk; then SIGKILL, as an OOM killer would
        for _ in range(600):
            if any(p.suffix == ".tmp" for p in tmp_path.iterdir()):
                break
            subprocess.run(["sleep", "0.1"])
        os.kill(killed.pid, signal.SIGKILL)
    finally:
        killed.wait()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"], "the killed writer left no temp file"
    model = EEGModel(EEGConfig(n_classes=2, n_electrodes=4, n_bands=2, frame_embed=16)).materialize((1, 4, 2, 8))
    save_checkpoint(target, model, (1, 4, 2, 8), epoch=1, metrics={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
    assert torch.load(target, weights_only=True)["epoch"] == 1
