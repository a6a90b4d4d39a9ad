"""eeg2arm.atomic: files and folders never half-written. Temps are removed when the writer is interrupted (SIGTERM,
SIGHUP, Ctrl-C) and a killed writer's leftovers by the next write to the same path, never a live writer's nor
another host's. The writers run in real subprocesses, signalled for real."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from eeg2arm.atomic import HOST, atomic_folder, atomic_write, leftovers
from eeg2arm.checkpoint import save_checkpoint
from eeg2arm.errors import UserInputError

WRITER = textwrap.dedent("""
    import os, signal, sys, time
    import numpy as np
    from eeg2arm.atomic import atomic_folder, atomic_write

    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, np.zeros(1000))  # a real write, then the signal arrives
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))
        time.sleep(30)

    def write_folder(tmp):
        write(tmp / "X.npy")

    if sys.argv[3] == "file":
        atomic_write(sys.argv[1], write)
    else:
        atomic_folder(sys.argv[1], write_folder)
""")


def run_writer(target, sig: str, kind: str = "file") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRITER, str(target), sig, kind], capture_output=True, timeout=60)


@pytest.mark.parametrize("sig, code", [("SIGTERM", 128 + signal.SIGTERM), ("SIGHUP", 128 + signal.SIGHUP),
                                       ("SIGINT", -signal.SIGINT)])
def test_an_interrupted_write_leaves_the_old_file_and_no_temp_file(tmp_path, sig, code):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"previous good checkpoint")
    done = run_writer(target, sig)
    assert done.returncode == code, done.stderr.decode()[-500:]
    assert target.read_bytes() == b"previous good checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_a_write_that_fails_leaves_the_old_file(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"previous good checkpoint")

    def killed_midway(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half a check")
        raise KeyboardInterrupt  # what Ctrl-C during torch.save looks like

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, killed_midway)
    assert target.read_bytes() == b"previous good checkpoint"
    assert list(tmp_path.iterdir()) == [target]


def test_temp_names_carry_the_host_and_pid_of_their_writer(tmp_path):
    seen = []
    atomic_write(tmp_path / "model.onnx", lambda tmp: seen.append(os.path.basename(tmp)) or open(tmp, "wb").close())
    assert seen[0].startswith(f".model.onnx.{HOST}.{os.getpid()}.") and seen[0].endswith(".tmp")


def test_a_killed_writers_temp_file_is_removed_by_the_next_write_and_a_live_or_remote_ones_kept(tmp_path):
    """On a folder shared by two hosts (NFS) a pid says nothing about another host's writer: its temp stays."""
    target = tmp_path / "model.onnx"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _pid_of_exited()
        stale = tmp_path / f".model.onnx.{HOST}.{dead}.abc123.tmp"
        busy = tmp_path / f".model.onnx.{HOST}.{live.pid}.def456.tmp"
        remote = tmp_path / f".model.onnx.other-host.{dead}.jkl012.tmp"  # that pid is gone here, not there
        other = tmp_path / f".other.onnx.{HOST}.{dead}.ghi789.tmp"  # another target's: not ours to remove
        longer = tmp_path / f".model.onnx.bak.{HOST}.{dead}.mno345.tmp"  # model.onnx.bak's, despite the prefix
        for p in (stale, busy, remote, other, longer):
            p.write_bytes(b"partial")
        atomic_write(target, lambda tmp: open(tmp, "wb").write(b"new"))
        assert target.read_bytes() == b"new"
        assert not stale.exists() and busy.exists() and remote.exists() and other.exists() and longer.exists()
        assert leftovers(tmp_path) == sorted([other, longer])  # of any target: this host's, writer gone
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
    killed = subprocess.Popen([sys.executable, "-c", WRITER, str(target), "SIGSTOP", "file"])
    try:  # SIGSTOP: it stopped itself inside the write, its temp file on disk; then SIGKILL, as an OOM killer would
        _wait_for_temp(tmp_path)
        os.kill(killed.pid, signal.SIGKILL)
    finally:
        killed.wait()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"], "the killed writer left no temp file"
    model = EEGModel(EEGConfig(n_classes=2, n_electrodes=4, n_bands=2, frame_embed=16)).materialize((1, 4, 2, 8))
    save_checkpoint(target, model, (1, 4, 2, 8), epoch=1, metrics={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
    assert torch.load(target, weights_only=True)["epoch"] == 1


def _wait_for_temp(folder) -> None:
    for _ in range(600):
        if any(p.suffix == ".tmp" for p in folder.iterdir()):
            return
        subprocess.run(["sleep", "0.1"])
    raise AssertionError("the writer made no temp")


def test_a_folder_appears_whole_with_its_files(tmp_path):
    out = tmp_path / "prepared"

    def write(tmp):
        np.save(tmp / "X.npy", np.arange(6))
        (tmp / "meta.json").write_text("{}")

    atomic_folder(out, write)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]
    assert sorted(p.name for p in out.iterdir()) == ["X.npy", "meta.json"]
    assert np.array_equal(np.load(out / "X.npy"), np.arange(6))
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # not mkdtemp's 0700


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@pytest.mark.parametrize("sig, code", [("SIGTERM", 128 + signal.SIGTERM), ("SIGINT", -signal.SIGINT)])
def test_an_interrupted_folder_write_leaves_nothing(tmp_path, sig, code):
    done = run_writer(tmp_path / "prepared", sig, "folder")
    assert done.returncode == code, done.stderr.decode()[-500:]
    assert list(tmp_path.iterdir()) == []


def test_a_killed_folder_writers_temp_is_removed_by_the_next_write_and_a_folder_never_written_over(tmp_path):
    out = tmp_path / "prepared"
    killed = subprocess.Popen([sys.executable, "-c", WRITER, str(out), "SIGSTOP", "folder"])
    try:
        _wait_for_temp(tmp_path)
        os.kill(killed.pid, signal.SIGKILL)
    finally:
        killed.wait()
    atomic_folder(out, lambda tmp: (tmp / "meta.json").write_text("{}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]
    with pytest.raises(UserInputError, match="exists: choose a new name"):
        atomic_folder(out, lambda tmp: (tmp / "meta.json").write_text('{"second": 1}'))
    assert (out / "meta.json").read_text() == "{}" and sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]
