"""The bento as a deployable image: `bentoml build`, `bentoml containerize` (podman), `podman run`, real requests.

The GPU bento is built and its generated Dockerfile and requirements checked (building it downloads nothing);
the image that is built and run is the CPU variant (bentofile.cpu.yaml), since the CUDA wheels are gigabytes. The
running image gets the service-safety attacks of tests/attacks.py (the settings of test_service_safety's `tight`
server) and schemathesis, and holds exactly the versions the bento pins.
Needs podman and the local base image: `sudo scripts/container-base.sh` (see ../shared/notes/containers.md).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
import yaml

import attacks  # tests/attacks.py
from attacks import TIGHT, TOKEN, Target
from eeg2arm.checkpoint import load_model_from_checkpoint
from serving.local_server import REPO, free_port, wait_ready
from test_platforms import pins

BASE_IMAGE = "docker.io/library/python:3.11-slim"


def bentoml(home: Path, *args: str, timeout: float = 120) -> str:
    done = subprocess.run([sys.executable, "-m", "bentoml", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "BENTOML_HOME": str(home), "EEG2ARM_ONNX": ""}, timeout=timeout)
    assert done.returncode == 0, f"bentoml {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build(home: Path, bentofile: str) -> Path:
    """`bentoml build -f bentofile`; returns the bento's folder in the store."""
    tag = bentoml(home, "build", "-f", bentofile, "-o", "tag").strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    return home / "bentos" / name / version


def podman_unusable() -> str | None:
    """Why podman cannot run the image here, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed (run scripts/container-base.sh as root)"
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE], capture_output=True).returncode != 0:
        return f"no local {BASE_IMAGE} (run scripts/container-base.sh as root)"
    done = subprocess.run(["podman", "run", "--rm", BASE_IMAGE, "/bin/true"], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        return f"`podman run --rm {BASE_IMAGE} /bin/true` fails here: {done.stderr.strip()[-300:]}"
    return None


@pytest.mark.container  # 40 s of bentoml build: with the image test, in CI's second step (`pytest -m container`)
def test_gpu_bento_build(bento_home):
    bento = build(bento_home, "bentofile.yaml")
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    assert manifest["services"][0]["models"][0]["tag"].startswith("eeg2arm:")  # the model travels in the bento
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().split()
    assert any(r.startswith("onnxruntime-gpu[cuda,cudnn]==") for r in requirements)
    assert not any(r.startswith(("torch", "onnxruntime==", "scikit-learn")) for r in requirements)
    assert all("==" in r for r in requirements)  # pinned
    assert {f"{name}=={v}" for name, v in pins("bentofile.yaml").items() if name != "onnxruntime-gpu"} <= \
        set(requirements)
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile  # CUDA comes from the wheels, not a CUDA base image
    assert (bento / "src" / "serving" / "service.py").is_file()


def image_versions(image: str, names: list[str]) -> dict[str, str]:
    """{package: version} installed in the image."""
    code = f"import importlib.metadata as m, json; print(json.dumps({{n: m.version(n) for n in {names!r}}}))"
    done = subprocess.run(["podman", "run", "--rm", "--entrypoint", "python", image, "-c", code], capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.container
def test_cpu_container_serves_and_holds_against_the_attacks(bento_home, bandpower, trained, tmp_path):
    reason = podman_unusable()
    if reason:
        pytest.skip(reason)
    bento = build(bento_home, "bentofile.cpu.yaml")
    image = f"localhost/eeg2arm-cpu-test:{uuid.uuid4().hex[:8]}"
    bentoml(bento_home, "containerize", f"eeg2arm-cpu:{bento.name}", "--backend", "podman", "-t", image,
            "--opt", "network=host", timeout=900)
    port = free_port()
    env = [arg for name, value in TIGHT.items() for arg in ("-e", f"{name}={value}")]
    cid = subprocess.run(["podman", "run", "-d", "--network", "host", *env, image, "serve", "--host", "127.0.0.1",
                          "--port", str(port)], capture_output=True, text=True, check=True).stdout.strip()

    def log() -> str:
        done = subprocess.run(["podman", "logs", cid], capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr

    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, timeout=120)
        pinned = pins("bentofile.cpu.yaml")
        assert image_versions(image, sorted(pinned)) == pinned  # the image runs what the bento pins
        target = Target(url, token=TOKEN, allowed_host="eeg2arm", log=log)
        X = bandpower[0][:4, :, :, :15]  # within the tight limits (4 windows, T <= 16)
        r = requests.post(f"{url}/predict", json={"x": X.tolist()}, headers=target.auth, timeout=30)
        assert r.status_code == 200, r.text
        model, _ = load_model_from_checkpoint(trained[0], "cpu")
        with torch.no_grad():
            expected = torch.softmax(model(torch.from_numpy(X)), dim=-1).numpy()
        assert np.abs(np.array(r.json()["probs"]) - expected).max() <= 1e-5
        meta = requests.get(f"{url}/metadata", headers=target.auth, timeout=10).json()
        assert meta["providers"] == ["CPUExecutionProvider"] and meta["model"]["name"] == "eeg2arm"
        window = bandpower[0][0]
        attacks.token_guards_every_route(target)
        attacks.bearer_scheme_is_case_insensitive(target)
        attacks.bodies_of_other_types_are_415(target, window)
        attacks.repeated_headers_are_400(target, window)
        attacks.json_boolean_among_numbers_is_400(target, window)
        attacks.cross_origin_is_403(target, window)
        attacks.huge_fields_are_refused_without_an_echo_in_one_log_line(target)
        attacks.nested_json_is_refused_before_it_is_parsed(target, window, nests=8000)  # for the tight limits
        attacks.nested_json_on_the_websocket_is_an_error_message(target, window)
        attacks.odd_npy_sizes_on_the_websocket_are_an_error_message(target, window)
        attacks.chunked_body_cannot_get_past_the_body_limit(target, window)
        attacks.foreign_host_is_refused(target)
        attacks.unknown_paths_are_404_and_never_redirected(target)
        attacks.a_request_cannot_write_its_own_log_line(target)
        attacks.slow_body_is_408(target, timeout_s=1.0)
        attacks.schemathesis_finds_nothing(target, tmp_path)
    finally:
        subprocess.run(["podman", "stop", "-t", "10", cid], capture_output=True)
        subprocess.run(["podman", "rm", "-f", cid], capture_output=True)
        image_id = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", image],
                                  capture_output=True, text=True).stdout.strip()
        subprocess.run(["podman", "rmi", image_id or image], capture_output=True)
