"""`pip install eeg2arm` on every platform the project supports, checked from this machine: the built wheel is
resolved with pip's `--dry-run --platform ... --only-binary=:all:` for Linux x86_64, Linux aarch64 and macOS arm64
(onnxruntime-gpu where its wheels exist, onnxruntime elsewhere); and the bentos pin what the code relies on, in
versions pyproject.toml allows. The resolution needs the package registry (CI has it); without one it skips.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]

# pip evaluates environment markers (onnxruntime-gpu's, torch's CUDA wheels') for the machine it runs on, even with
# --platform, which only picks wheel tags. This sitecustomize, put on the PYTHONPATH of the pip process alone, makes
# the `platform` functions behind platform_system and platform_machine answer for the target instead. (sys_platform
# stays this machine's: no requirement of eeg2arm's tree uses it outside extras, which the test asserts.)
SHIM = "import platform\nplatform.system = lambda: {system!r}\nplatform.machine = lambda: {machine!r}\n" \
       "platform.mac_ver = lambda *args: ('14.0', ('', '', ''), {machine!r})\n"


def manylinux(arch: str) -> list[str]:
    """The wheel tags a glibc 2.28 Linux accepts (pip expands macOS versions itself, manylinux ones not)."""
    return [f"manylinux_2_{minor}_{arch}" for minor in range(17, 29)] + [f"manylinux2014_{arch}"]


PLATFORMS = {  # name -> (platform_system, platform_machine, wheel tags, ONNX Runtime package expected)
    "linux-x86_64": ("Linux", "x86_64", manylinux("x86_64"), "onnxruntime-gpu"),
    "linux-aarch64": ("Linux", "aarch64", manylinux("aarch64"), "onnxruntime"),
    "macos-arm64": ("Darwin", "arm64", ["macosx_14_0_arm64"], "onnxruntime"),
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """eeg2arm's wheel, built as `pip install eeg2arm` would get it, from a copy of this checkout's sources (a build
    writes its build/ and egg-info folders beside them)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in ("eeg2arm", "export", "serving"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(source)], check=True, capture_output=True, timeout=300)
    return next(out.glob("eeg2arm-*.whl"))


def registry_unreachable() -> str | None:
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    try:
        urllib.request.urlopen(f"{index}/pip/", timeout=15).close()
    except OSError as e:
        return f"the package registry {index} cannot be reached here ({type(e).__name__})"
    return None


def resolve(wheel: Path, folder: Path, system: str, machine: str, tags: list[str]) -> tuple[str, dict | None]:
    """(pip's stderr, its --report or None when it failed) for installing `wheel` on the target platform."""
    (folder / "sitecustomize.py").write_text(SHIM.format(system=system, machine=machine))
    report = folder / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
         *(arg for tag in tags for arg in ("--platform", tag)), "--python-version", "3.11", "--implementation", "cp",
         "--target", str(folder / "target"), "--report", str(report), "--quiet", str(wheel)],
        env={**os.environ, "PYTHONPATH": str(folder)}, capture_output=True, text=True, timeout=900)
    return done.stderr, json.loads(report.read_text()) if done.returncode == 0 else None


@pytest.fixture(scope="module")
def resolutions(wheel, tmp_path_factory) -> dict[str, tuple[str, dict | None]]:
    """Each platform's resolution, the three at once (pip waits on the registry, not on the CPU)."""
    reason = registry_unreachable()
    if reason:
        pytest.skip(reason)
    with ThreadPoolExecutor(len(PLATFORMS)) as pool:
        futures = {name: pool.submit(resolve, wheel, tmp_path_factory.mktemp(name), system, machine, tags)
                   for name, (system, machine, tags, _) in PLATFORMS.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", list(PLATFORMS))
def test_pip_install_resolves_on_every_platform(resolutions, name):
    """onnxruntime-gpu was a hard dependency: pip install of the wheel failed to resolve on macOS and ARM Linux
    (issue 17). It must resolve on all three, with the ONNX Runtime build that exists there."""
    system, machine, _, runtime = PLATFORMS[name]
    stderr, result = resolutions[name]
    assert result is not None, stderr[-3000:]
    assert (result["environment"]["platform_system"], result["environment"]["platform_machine"]) == (system, machine)
    installed = {item["metadata"]["name"].lower().replace("_", "-"): item for item in result["install"]}
    other = "onnxruntime" if runtime == "onnxruntime-gpu" else "onnxruntime-gpu"
    assert runtime in installed and other not in installed, sorted(installed)
    assert {"torch", "bentoml", "mne-lsl", "uvicorn", "starlette"} <= set(installed)
    cuda = [n for n in installed if n.startswith("cuda-") or n.endswith(("-cu12", "-cu13"))]  # CUDA runtime wheels
    assert (name == "macos-arm64") == (not cuda), cuda
    for item in installed.values():  # the shim covers every marker that decides this tree (see SHIM)
        for requirement in item["metadata"].get("requires_dist") or []:
            marker = str(Requirement(requirement).marker or "")
            assert "sys_platform" not in marker or "extra ==" in marker, (item["metadata"]["name"], requirement)


def test_this_machine_installs_the_gpu_build():
    """Linux x86_64 (this machine, CI, the GPU bento) still gets onnxruntime-gpu, and not the CPU build beside it."""
    assert version("onnxruntime-gpu")
    with pytest.raises(PackageNotFoundError):
        version("onnxruntime")


def pins(bentofile: str) -> dict[str, str]:
    """{package: version} of a bentofile's python.packages, every one pinned with ==."""
    packages = yaml.safe_load((REPO / bentofile).read_text())["python"]["packages"]
    assert all("==" in p for p in packages), packages
    return {Requirement(p).name: str(Requirement(p).specifier).removeprefix("==") for p in packages}


def test_the_bentos_pin_what_the_code_relies_on_as_pyproject_allows():
    """The container must run what `bentoml serve` runs: the bentos pin the server stack the code relies on
    (BentoML, uvicorn, Starlette, pydantic, ONNX Runtime), in versions pyproject.toml allows, the same in both
    bentos but for the ONNX Runtime build; no scikit-learn (the service imports none) and no torch. (The image holds
    exactly these pins: tests/test_container.py.)"""
    declared = {r.name: r for r in map(Requirement, requires("eeg2arm")) if r.marker is None or
                "extra" not in str(r.marker)}
    gpu, cpu = pins("bentofile.yaml"), pins("bentofile.cpu.yaml")
    assert {k: v for k, v in gpu.items() if k != "onnxruntime-gpu"} == {k: v for k, v in cpu.items()
                                                                           if k != "onnxruntime"}
    assert gpu["onnxruntime-gpu"] == cpu["onnxruntime"]
    for name in ("bentoml", "uvicorn", "starlette", "pydantic", "numpy", "onnx", "websockets"):
        assert name in cpu, name
    for pinned in (gpu, cpu):
        for name, v in pinned.items():
            assert declared[name].specifier.contains(v), (name, v, str(declared[name].specifier))
    assert not {"scikit-learn", "torch"} & (set(gpu) | set(cpu))
