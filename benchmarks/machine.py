"""The machine a benchmark measured on, in the one form every script under benchmarks/ prints.

Timings move with the CPU and its load, and so did one accuracy (docs/accuracy.md, stop 28: FingerMovements by
0.029 between two machines with the same code), so every table says where it was made: the CPU's model name, the
cores this process may use, the load, then Python and the versions of the libraries its numbers depend on.
"""
from __future__ import annotations

import os
import platform
import re
from importlib.metadata import packages_distributions, version
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo); elsewhere, or on ARM Linux, what `platform` knows of it."""
    cpuinfo = Path("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M) if cpuinfo.exists() else None
    return model.group(1).strip() if model else platform.processor() or platform.machine()


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container's or taskset's share), not the host's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def installed_versions(*modules: str) -> dict[str, str]:
    """{distribution: its installed version} of the distributions that install these import names (onnxruntime is
    onnxruntime-gpu on Linux x86-64), for libraries that another process, a server, loads."""
    found = packages_distributions()
    return {dist: version(dist) for module in modules for dist in found.get(module, [])}


def machine_line(versions: dict[str, str], *details: str) -> str:
    """'AMD EPYC 7B13, 2 cores, load 0.52, 2 torch threads; Python 3.11.7, torch 2.13.0+cpu, ...': `details` after the
    load, then `versions` ({library: version}) after Python's."""
    load = [f"load {os.getloadavg()[0]:.2f}"] if hasattr(os, "getloadavg") else []
    machine = ", ".join([cpu_model(), f"{usable_cores()} cores", *load, *details])
    return "; ".join([machine, ", ".join([f"Python {platform.python_version()}",
                                          *(f"{name} {v}" for name, v in versions.items())])])
