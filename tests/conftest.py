"""Shared fixtures: the real EEG in ../shared/data and a checkpoint trained on it once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EEG2ARM_SHARED", REPO.parent / "shared")) / "data"
BANDPOWER = SHARED_DATA / "bandpower"


def push_in_chunks(online, signal: np.ndarray, seed: int = 0) -> tuple[np.ndarray, int]:
    """Push (C_in, n) µV into an OnlineFeatures in random-size chunks of 1-199 samples, as a live source would: the
    frames (C, F, T) that came out and the most samples its state ever held."""
    rng, out, i, held = np.random.default_rng(seed), [], 0, 0
    while i < signal.shape[1]:
        n = int(rng.integers(1, 200))
        out.append(online.push(signal[:, i:i + n]))
        held = max([held, *(x.shape[-1] for x in online.pending.values())])
        i += n
    return np.concatenate(out, axis=-1), held


@pytest.fixture(scope="session")
def bandpower_dir() -> Path:
    if not (BANDPOWER / "X.npy").is_file():
        pytest.fail(f"real EEG data not found at {BANDPOWER}: clone beside ../shared or set EEG2ARM_SHARED")
    return BANDPOWER


@pytest.fixture(scope="session")
def raw_dir(bandpower_dir) -> Path:
    """../shared/data/raw: the recordings (EEGMMIDB, eyes open/closed, the epoch files)."""
    return bandpower_dir.parent / "raw"


@pytest.fixture(scope="session")
def bandpower(bandpower_dir) -> tuple[np.ndarray, np.ndarray]:
    """The eyes-open/closed set: X (100, 32, 4, 15) float32, y (100,) int64."""
    return np.load(bandpower_dir / "X.npy"), np.load(bandpower_dir / "y.npy")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, bandpower):
    """(checkpoint path, metrics) of a small model trained for 2 epochs on the real eyes-open/closed set."""
    from eeg2arm.config import EEGConfig
    from eeg2arm.train import TrainOptions, train

    X, y = bandpower
    path = tmp_path_factory.mktemp("ckpt") / "ckpt.pt"
    config = EEGConfig(n_classes=2, n_electrodes=32, n_bands=4, frame_embed=64)
    metrics = train(X, y, config, path, TrainOptions(epochs=2, batch=32, workers=0, device="cpu"), echo=lambda s: None)
    return path, metrics


@pytest.fixture(scope="session")
def exported(tmp_path_factory, trained):
    """(ONNX path, ExportResult) of the `trained` checkpoint, exported once per session with parity checked."""
    from export.onnx_export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    return path, export_onnx(trained[0], path, echo=lambda s: None)


@pytest.fixture(scope="session")
def bento_home(tmp_path_factory, trained) -> Path:
    """A BENTOML_HOME whose model store holds the `trained` model as eeg2arm:latest, put there the way users do
    it: `eeg2arm export --bentoml` (a subprocess, since bentoml reads BENTOML_HOME when it is imported)."""
    import subprocess
    import sys

    home = tmp_path_factory.mktemp("bentoml_home")
    done = subprocess.run([sys.executable, "-m", "eeg2arm", "export", "--ckpt", str(trained[0]),
                           "--out", str(home / "model.onnx"), "--bentoml"],
                          env={**os.environ, "BENTOML_HOME": str(home)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "eeg2arm:" in done.stdout  # the store tag is printed
    return home


@pytest.fixture(scope="session")
def server(bento_home, tmp_path_factory) -> str:
    """Base URL of `bentoml serve` from the repo root (model eeg2arm:latest from the store, with its step graph,
    default limits) on a free loopback port; stopped by pid at the end of the session."""
    from serving.local_server import serve

    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve({"BENTOML_HOME": str(bento_home), "EEG2ARM_ONNX": ""}, log) as url:
        yield url
