"""Run `bentoml serve` as a child process on a free loopback port (for tests, benchmarks and demos)."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import psutil

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float, proc: subprocess.Popen | None = None, ca: Path | None = None) -> None:
    """Poll GET {url}/readyz until it answers 200; raise if `proc` exits or `timeout` seconds pass. `ca`: the
    certificate to trust for an https URL (e.g. a self-signed one)."""
    context = ssl.create_default_context(cafile=ca) if ca is not None else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2, context=context) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url}/readyz did not answer 200 within {timeout:.0f} s")


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the server by its pid (it stops its workers), then its process group if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):  # workers orphaned by a crash share the group
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def serve(env: dict[str, str], log_path: Path, timeout: float = 90, args: tuple[str, ...] = (),
          ca: Path | None = None) -> Iterator[str]:
    """`bentoml serve` from the repo root with extra `env` and `args` on a free port (on its default host,
    127.0.0.1); yields its base URL (https when `ca`, the certificate to trust, is given), stops it on exit."""
    port = free_port()
    cmd = [sys.executable, "-m", "bentoml", "serve", "--port", str(port), *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"{'https' if ca else 'http'}://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout, proc, ca)
        yield url
    finally:
        stop(proc)


def worker_process(url: str, timeout: float = 10) -> "psutil.Process":
    """The worker process of a one-worker server at `url` (the one that parses requests and runs the model).

    Looked for until `timeout`: on a busy machine a scan of the sockets can miss the worker's share of the
    listening socket (one CI run found only the server's)."""
    import psutil  # a BentoML dependency

    port = int(url.rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while True:
        pids = {c.pid for c in psutil.net_connections("tcp") if c.laddr.port == port and c.status == "LISTEN"}
        for pid in pids - {None}:
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(pid)
                if "--worker-id" in process.cmdline():
                    return process
        if time.monotonic() > deadline:
            raise RuntimeError(f"no worker process of {url} found listening on port {port}")
        time.sleep(0.2)


def peak_rss_kb(pid: int) -> int:
    """The peak resident memory of process `pid` so far (VmHWM), in KB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
