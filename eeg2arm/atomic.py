"""Outputs that are never half-written: written under a hidden temp name beside the target, then put in place in
one step (a rename, or a link that never replaces). Checkpoints, exports and plots are written by atomic_write,
a folder of files by atomic_folder; `eeg2arm record` keeps its pieces in a temp folder named the same way.

Temp names are `.TARGET.HOST.PID.RANDOM.SUFFIX`: the writer's host and process id, so that what a writer left
behind when it was killed outright (SIGKILL, power loss) is told apart from a live writer's, on this host or on
another one sharing the folder (NFS). Only temps of this host whose process is gone are ever removed.

SIGTERM and SIGHUP (a service manager stopping us, a closed terminal) raise `Terminated` while a write runs, so
its temp is removed like after Ctrl-C, and a caller that can save (record) saves.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import UserInputError

HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "localhost"  # no dots: temp names split on them
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(SystemExit):
    """SIGTERM or SIGHUP arrived: uncaught, the process exits with 128 + the signal's number, as it would have."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signame = signal.Signals(signum).name


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> None:
    """Call write(tmp_path) on a temp file beside `path`, then rename it into place (replacing `path`).

    The temp file is removed when the write fails or the process is interrupted (Ctrl-C, SIGTERM, SIGHUP); one
    left by a writer that was killed outright is removed by the next atomic_write to the same path.
    """
    path = Path(path)
    check_folder(path)
    remove_stale_temps(path)
    with terminate_raises():  # from before the temp exists: a SIGTERM as it is made must not leave it behind
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
        except OSError as e:
            raise UserInputError(f"{path} cannot be written ({e.strerror}): choose a writable folder") from None
        try:
            os.close(fd)
            write(tmp)
            fsync(Path(tmp))  # on disk before the rename, so a crash leaves the old file or the new one
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; a written file gets the usual permissions
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def atomic_folder(out: str | Path, write: Callable[[Path], Any]) -> None:
    """Call write(tmp_folder) on a new hidden folder beside `out`, then rename it to `out`: the folder appears
    whole or not at all. Never written over: UserInputError when `out` exists (or appeared while writing).

    Cleanup as for atomic_write: removed when the write fails or is interrupted, a killed writer's by the next call.
    """
    out = Path(out)
    check_folder(out)
    remove_stale_temps(out)
    with terminate_raises():  # from before the temp exists, as in atomic_write
        tmp = new_temp_folder(out)
        try:
            write(tmp)
            for file in tmp.rglob("*"):
                if file.is_file():
                    fsync(file)
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700
            if out.exists():
                raise UserInputError(f"{out} exists: choose a new name (an output folder is never written over)")
            try:
                os.rename(tmp, out)
            except OSError as e:  # a non-empty folder appeared just now
                raise UserInputError(f"{out} appeared while writing ({e.strerror}): choose a new name") from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


def new_temp_folder(target: Path, suffix: str = ".tmp") -> Path:
    """A new, empty hidden folder beside `target`, named for this writer (its caller removes it)."""
    try:
        return Path(tempfile.mkdtemp(dir=target.parent, prefix=temp_prefix(target), suffix=suffix))
    except OSError as e:
        raise UserInputError(f"{target} cannot be written ({e.strerror}): choose a writable folder") from None


def check_writable(target: Path, flag: str) -> None:
    """UserInputError unless `target`'s folder exists and takes a new file: checked before long work (training,
    exporting), so it does not fail at the end. A real probe: os.access says yes to root even where nothing can be
    written (/sys, read-only mounts)."""
    if not target.parent.is_dir():
        raise UserInputError(f"output folder does not exist: {target.parent}; create it or choose another {flag}")
    try:
        with tempfile.TemporaryFile(dir=target.parent):
            pass
    except OSError as e:
        raise UserInputError(f"output folder {target.parent} is not writable ({e.strerror}): choose another "
                             f"{flag}") from None


def check_folder(target: Path) -> None:
    if not target.parent.is_dir():
        raise UserInputError(f"output folder does not exist: {target.parent}")


def temp_prefix(target: Path) -> str:
    return f".{target.name}.{HOST}.{os.getpid()}."


def writer_of(temp: Path, suffix: str) -> tuple[str, str, int] | None:
    """(target name, host, pid) of a temp named by temp_prefix + random + suffix; None for any other name."""
    if not temp.name.startswith(".") or not temp.name.endswith(suffix):
        return None
    parts = temp.name[1:len(temp.name) - len(suffix)].rsplit(".", 3)  # target, host, pid, random (no dots)
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


def leftovers(folder: Path, suffix: str = ".tmp", target: str | None = None) -> list[Path]:
    """The temps in `folder` (of `target`, or of any) whose writer was a process of this host that is gone."""
    found = []
    for temp in sorted(folder.glob(f".*{suffix}")):
        writer = writer_of(temp, suffix)
        if writer is not None and writer[1] == HOST and (target is None or writer[0] == target) \
                and not alive(writer[2]):
            found.append(temp)
    return found


def remove_stale_temps(path: Path, suffix: str = ".tmp") -> list[Path]:
    """Remove the temps (files or folders) of writes to `path` whose writer process is gone; return them."""
    stale = leftovers(path.parent, suffix, path.name)
    for temp in stale:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)
    return stale


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def fsync(file: Path) -> None:
    with open(file, "rb") as f:
        os.fsync(f.fileno())


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def terminate_raises() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise Terminated (so `finally` clauses run, and a caller may catch
    it and save) instead of ending the process at once. Only where Python allows it (the main thread) and for a
    signal nobody else handles: under nohup SIGHUP stays ignored, an outer terminate_raises keeps its handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, terminate) for sig in ENDING_SIGNALS if signal.getsignal(sig) == signal.SIG_DFL}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def interruptions_ignored() -> Iterator[None]:
    """While the block runs (saving what was recorded), Ctrl-C, SIGTERM and SIGHUP are ignored: a second signal
    must not lose the whole session. Only in the main thread (elsewhere no handler can be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, *ENDING_SIGNALS)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
