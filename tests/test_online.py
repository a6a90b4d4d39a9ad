"""Online features equal `prepare`'s on real recordings, for every recipe (reference, filters, features)."""
from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np
import pytest
import requests
from click.testing import CliRunner

from eeg2arm.cli import cli
from eeg2arm.config import EEGConfig
from eeg2arm.data import load_data_meta
from eeg2arm.errors import UserInputError
from eeg2arm.realtime.online import OnlineFeatures
from serving.local_server import serve

from conftest import push_in_chunks

MONTAGE = "colin27_1005"
RECIPES = {  # name: prepare options (every recipe kind: features, reference, montage, band-pass)
    "bandpower": [],
    "slow": ["--features", "slow"],
    "slow,bandpower": ["--features", "slow,bandpower", "--slow-cutoff", "2"],
    "average 8-30 Hz": ["--reference", "average", "--bandpass", "8-30"],
    "named reference": ["--reference", "Cz", "--montage", MONTAGE, "--channels", "C3,C4", "--features",
                        "slow,bandpower"],
    "csd": ["--reference", "csd", "--montage", MONTAGE, "--features", "slow,bandpower", "--bandpass", "0.5-40"],
    "step beyond the frame": ["--frame-window", "0.05", "--features", "slow,bandpower"],  # 8-sample frames every 16
}


def prepare(files, out: Path, *options) -> tuple[np.ndarray, dict]:
    result = CliRunner().invoke(cli, ["prepare", *map(str, files), "--out", str(out), *map(str, options)])
    assert result.exit_code == 0, result.output
    return np.load(out / "X.npy"), json.loads((out / "meta.json").read_text())


def config_of(meta_path: Path) -> EEGConfig:
    """The EEGConfig that `eeg2arm train` records from this meta.json (the one source of truth after prepare)."""
    meta = json.loads(meta_path.read_text())
    n, c, f, t = meta["shape"]
    return EEGConfig(n_classes=len(meta["classes"]), n_electrodes=c, n_bands=f, **load_data_meta(meta_path))


@pytest.mark.parametrize("name", RECIPES)
def test_online_frames_equal_prepare_for_every_recipe(name, raw_dir, tmp_path):
    """One live pass over eegmmidb run 4 from its first sample gives every trial's frames: all cues lie on the 0.1 s
    grid of the frame step, so trial frame j is online frame onset / step + j."""
    edf = raw_dir / "eegmmidb" / "S001" / "S001R04.edf"
    X, meta = prepare([edf], tmp_path / "p", "--tmin", 0, "--tmax", 4, "--frame-step", 0.1, *RECIPES[name])
    config = config_of(tmp_path / "p" / "meta.json")
    signal = mne.io.read_raw(edf, verbose="error").get_data(picks=list(config.stream_channels), units="uV")
    online = OnlineFeatures.for_model(config)
    frames, held = push_in_chunks(online, signal, seed=len(name))  # (C, F, T_all)
    starts = np.array([round(onset * config.sfreq) for _, onset in meta["trial_sources"]])
    assert len(starts) == 30 and np.all(starts % 16 == 0)  # 15 rest + 15 imagery cues, on the grid of 16 samples
    online_trials = np.stack([frames[..., s // 16: s // 16 + X.shape[-1]] for s in starts])
    assert online_trials.shape == X.shape and np.isfinite(X).all()
    assert np.abs(online_trials - X).max() <= 1e-4
    assert held < online.w + 200  # the state never holds more than one frame and one chunk of samples


def test_online_frames_equal_prepare_on_epochs_from_their_own_first_sample(raw_dir, tmp_path):
    """An epoch goes through the recipe from its own first sample: a stream of that epoch alone reproduces it."""
    epo = raw_dir / "SelfRegulationSCP1" / "SelfRegulationSCP1_TRAIN-epo.fif"
    X, _ = prepare([epo], tmp_path / "p", "--features", "slow,bandpower", "--reference", "average", "--bandpass",
                   "0.5-40", "--slow-cutoff", 2)
    config = config_of(tmp_path / "p" / "meta.json")
    data = mne.read_epochs(epo, verbose="error").get_data(picks=list(config.stream_channels), units="uV")
    for i in (0, 1, 267):
        frames, _ = push_in_chunks(OnlineFeatures.for_model(config), data[i], seed=i)
        assert np.abs(frames - X[i]).max() <= 1e-4


def test_a_dropout_does_not_stop_the_filters(raw_dir, tmp_path):
    """NaN samples (an amplifier dropout) poison the frames they fall in, then the causal filters start again."""
    edf = raw_dir / "eegmmidb" / "S001" / "S001R04.edf"
    prepare([edf], tmp_path / "p", "--tmin", 0, "--tmax", 4, *RECIPES["csd"])
    config = config_of(tmp_path / "p" / "meta.json")
    signal = mne.io.read_raw(edf, verbose="error").get_data(picks=list(config.stream_channels), units="uV")[:, :3200]
    signal[5, 800:810] = np.nan  # in frames 19 and 20 (40-sample steps, 80-sample frames)
    frames, _ = push_in_chunks(OnlineFeatures.for_model(config), signal, seed=3)  # (C, F, 79)
    finite = np.isfinite(frames).all(axis=(0, 1))
    assert finite[:19].all() and not finite[19:21].any() and finite[30:].all()  # chunks are < 200 samples


def test_a_config_made_before_recipes_is_band_power(bandpower_dir):
    """The shared sets' meta.json (and checkpoints trained on them) record no recipe: plain band power."""
    config = config_of(bandpower_dir / "eegmmidb_imagery" / "meta.json")
    assert config.features is None and config.stream_channels == config.channel_names
    online = OnlineFeatures.for_model(config)
    assert online.recipe.features == ("bandpower",) and online.recipe.reference == "none"
    assert online.recipe.bandpass is None and online.chain.matrix is None


def test_a_recipe_that_cannot_run_online_says_so(bandpower_dir):
    config = config_of(bandpower_dir / "meta.json")
    future = EEGConfig.from_dict({**config.to_dict(), "features": ["wavelet"]})  # from a later eeg2arm
    with pytest.raises(UserInputError, match="features cannot be computed online: features wavelet cannot be "
                                             "computed by this eeg2arm version"):
        OnlineFeatures.for_model(future)
    edited = EEGConfig.from_dict({**config.to_dict(), "features": ["slow", "bandpower"]})  # but no band "slow"
    with pytest.raises(UserInputError, match="lists the slow feature but no band named 'slow' giving its cut-off"):
        OnlineFeatures.for_model(edited)
    with pytest.raises(UserInputError, match="samples must be"):
        OnlineFeatures.for_model(config).push(np.zeros((3, 10)))


def test_stream_decodes_a_recording_with_a_referenced_recipe_alike_in_torch_onnx_and_the_server(raw_dir, tmp_path):
    """The recipe travels meta.json -> config -> checkpoint: `eeg2arm stream` reads the recording's 64 channels by
    their own names and feeds the model its 3 Laplacian channels."""
    from eeg2arm.train import TrainOptions, train
    from export.metadata import read_onnx_metadata
    from export.onnx_export import export_onnx

    files = sorted((raw_dir / "eegmmidb" / "S001").glob("*.edf"))
    X, meta = prepare(files, tmp_path / "p", "--event", "T1=left", "--event", "T2=right", "--tmin", 0, "--tmax", 4,
                      "--reference", "csd", "--montage", MONTAGE, "--channels", "C3,Cz,C4", "--features",
                      "slow,bandpower")
    config = config_of(tmp_path / "p" / "meta.json")
    assert config.channel_names == ("C3", "Cz", "C4") and len(config.stream_channels) == 64
    assert config.band_names == ("slow", "theta", "alpha", "beta", "gamma") and config.band_edges[0] == (0.0, 4.0)
    assert EEGConfig.from_json(config.to_json()) == config  # as the ONNX metadata and the service carry it
    small = EEGConfig.from_dict({**config.to_dict(), "frame_embed": 32, "n_heads": 2, "spatial_filters": 8})
    ckpt = tmp_path / "ckpt.pt"
    train(X, np.load(tmp_path / "p" / "y.npy"), small, ckpt, TrainOptions(epochs=1, batch=16, workers=0,
                                                                           device="cpu"), echo=lambda s: None)
    result = CliRunner().invoke(cli, ["stream", "--raw", str(files[0]), "--ckpt", str(ckpt), "--fast",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    n_times = mne.io.read_raw(files[0], verbose="error").n_times
    assert f"feature_frames={1 + (n_times - 80) // 40} " in result.output  # 0.5 s frames every 0.25 s at 160 Hz
    export_onnx(ckpt, tmp_path / "model.onnx", x_path=tmp_path / "p" / "X.npy", echo=lambda s: None)
    exported, _ = read_onnx_metadata(tmp_path / "model.onnx")  # what the service reads and shows at /metadata
    assert exported.to_dict()["reference"] == "csd" and exported.features == ("slow", "bandpower")
    assert exported == small
    onnx = CliRunner().invoke(cli, ["stream", "--raw", str(files[0]), "--onnx", str(tmp_path / "model.onnx"),
                                    "--fast", "--device", "cpu"])
    assert onnx.exit_code == 0, onnx.output
    decisions = [line for line in result.output.splitlines() if line.startswith("[t=")]
    assert decisions == [line for line in onnx.output.splitlines() if line.startswith("[t=")]
    with serve({"EEG2ARM_ONNX": str(tmp_path / "model.onnx")}, tmp_path / "serve.log") as url:
        recipe = requests.get(f"{url}/metadata", timeout=10).json()["recipe"]
        served = CliRunner().invoke(cli, ["stream", "--raw", str(files[0]), "--url", url, "--fast"])
    assert recipe == small.recipe() and recipe["reference"] == "csd" and len(recipe["input_channels"]) == 64
    assert served.exit_code == 0, served.output
    assert [line for line in served.output.splitlines() if line.startswith("[t=")] == decisions
