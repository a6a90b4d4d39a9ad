"""eeg2arm.Decoder, the scikit-learn estimator, on the real shared recordings: the CLI's prepare and train underneath
(the same checkpoint bit for bit), Epochs and arrays alike, clone / get_params / set_params, cross_val_score,
GridSearchCV, an aligned recipe on new trials, save (read by `eeg2arm infer`) and export (ONNX, parity checked)."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import mne
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

from eeg2arm import Decoder
from eeg2arm.checkpoint import CHECKPOINT_KEYS
from eeg2arm.cli import cli
from eeg2arm.named_recipes import named_recipes

KDD = {"prepare": ["--event", "rest", "--event", "task", "--frame-window", "0.4", "--frame-step", "0.2"],
       "train": ["--frame-embed", "16", "--epochs", "2", "--batch", "16", "--workers", "0", "--device", "cpu"]}
SMALL = {"epochs": 2, "frame_embed": 16}  # keeps each fit to a second or two


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def kdd_file(bandpower_dir) -> Path:
    return bandpower_dir.parent / "raw" / "KDD_Example" / "KDD_Example_TRAIN-epo.fif"


@pytest.fixture(scope="module")
def kdd(kdd_file) -> mne.BaseEpochs:
    """40 real 4-channel epochs of 0.89 s, rest (20) and task (20)."""
    return mne.read_epochs(kdd_file, preload=True, verbose="error")


@pytest.fixture(scope="module")
def kdd_arrays(kdd) -> tuple[np.ndarray, np.ndarray]:
    """(X (40, 4, 100) volts, y class names) of the same epochs."""
    names = {code: name for name, code in kdd.event_id.items()}
    return kdd.get_data(), np.array([names[c] for c in kdd.events[:, 2]])


@pytest.fixture(scope="module")
def fitted(kdd, kdd_arrays) -> Decoder:
    X, y = kdd_arrays
    return Decoder(KDD, sfreq=kdd.info["sfreq"], ch_names=kdd.ch_names).fit(X, y)


@pytest.fixture(scope="module")
def scp(bandpower_dir) -> mne.BaseEpochs:
    """268 real SelfRegulationSCP1 epochs (6 channels, 3.5 s at 256 Hz)."""
    path = bandpower_dir.parent / "raw" / "SelfRegulationSCP1" / "SelfRegulationSCP1_TRAIN-epo.fif"
    return mne.read_epochs(path, preload=True, verbose="error")


def test_fit_on_epochs_is_the_clis_prepare_and_train(kdd, kdd_file, tmp_path):
    """Decoder.fit on the file's epochs and `eeg2arm prepare` + `eeg2arm train` with the recipe's arguments give the
    same checkpoint: the same config (recipe and class names included) and the same weights."""
    assert invoke("prepare", kdd_file, "--out", tmp_path / "data", *KDD["prepare"]).exit_code == 0
    result = invoke("train", "--x", tmp_path / "data" / "X.npy", "--y", tmp_path / "data" / "y.npy", "--save",
                    tmp_path / "cli.pt", "--classes", 2, "--elec", 4, "--bands", 4, *KDD["train"])
    assert result.exit_code == 0, result.output
    decoder = Decoder(KDD).fit(kdd)
    decoder.save(tmp_path / "decoder.pt")
    ours, theirs = (torch.load(tmp_path / name, weights_only=True) for name in ("decoder.pt", "cli.pt"))
    assert tuple(ours) == CHECKPOINT_KEYS
    assert ours["config"] == theirs["config"] and ours["config"]["class_names"] == ["rest", "task"]
    assert ours["config"]["frame_embed"] == 16 and ours["config"]["sfreq"] == kdd.info["sfreq"]
    assert ours["model_state"].keys() == theirs["model_state"].keys()
    assert all(torch.equal(ours["model_state"][k], theirs["model_state"][k]) for k in ours["model_state"])
    assert list(decoder.classes_) == ["rest", "task"]


def test_fit_on_recordings_is_prepare_and_train_of_the_files(bandpower_dir, tmp_path):
    """A list of opened recordings is taken as `prepare` takes its files (the recipe's filters over each from its
    first sample, its trials cut by the recipe): the checkpoint of the CLI's prepare + train, one prediction per
    trial cut."""
    files = sorted((bandpower_dir.parent / "raw" / "eyes_open_closed").glob("*_raw.fif"))
    recipe = {"prepare": [*named_recipes()["eyes-alpha"].prepare, "--bandpass", "1-40"], "train": KDD["train"]}
    assert invoke("prepare", *files, "--out", tmp_path / "eyes", *recipe["prepare"]).exit_code == 0
    result = invoke("train", "--x", tmp_path / "eyes" / "X.npy", "--y", tmp_path / "eyes" / "y.npy", "--save",
                    tmp_path / "cli.pt", "--classes", 2, "--elec", 32, "--bands", 4, *recipe["train"])
    assert result.exit_code == 0, result.output
    recordings = [mne.io.read_raw(f, verbose="error") for f in files]
    decoder = Decoder(recipe).fit(recordings)
    decoder.save(tmp_path / "decoder.pt")
    ours, theirs = (torch.load(tmp_path / name, weights_only=True) for name in ("decoder.pt", "cli.pt"))
    assert ours["config"] == theirs["config"] and ours["config"]["bandpass"] == [1.0, 40.0]
    assert all(torch.equal(ours["model_state"][k], theirs["model_state"][k]) for k in ours["model_state"])
    y = np.load(tmp_path / "eyes" / "y.npy")
    assert list(decoder.classes_) == ["eyes_open", "eyes_closed"]
    assert decoder.predict(recordings).shape == (100,) and 0 <= decoder.score(recordings, decoder.classes_[y]) <= 1
    with pytest.raises(ValueError, match="give y=None"):
        Decoder(recipe).fit(recordings, y)


def test_arrays_in_volts_or_microvolts_and_epochs_are_the_same_trials(fitted, kdd, kdd_arrays):
    X, y = kdd_arrays
    probs = fitted.predict_proba(X)
    assert probs.shape == (40, 2) and np.allclose(probs.sum(axis=1), 1.0)
    assert list(fitted.classes_) == ["rest", "task"]  # sorted labels; predict_proba's columns follow them
    assert np.array_equal(fitted.predict(X), fitted.classes_[probs.argmax(axis=1)])
    assert np.allclose(fitted.predict_proba(kdd), probs, atol=1e-6)
    microvolts = copy.deepcopy(fitted).set_params(units="uV")  # the same model, reading µV
    assert np.allclose(microvolts.predict_proba(X * 1e6), probs, atol=1e-6)
    assert 0.0 <= fitted.score(X, y) <= 1.0


def test_clone_get_params_set_params():
    decoder = Decoder("eyes-alpha", sfreq=250.0, ch_names=["O1", "Oz"], epochs=3, lr=1e-3)
    params = decoder.get_params()
    assert params == {"recipe": "eyes-alpha", "sfreq": 250.0, "ch_names": ["O1", "Oz"], "units": "V", "epochs": 3,
                      "lr": 1e-3}
    twin = clone(decoder)
    assert twin is not decoder and twin.get_params() == params and not hasattr(twin, "model_")
    twin.set_params(epochs=5, frame_embed=16, sfreq=128.0)
    assert twin.get_params()["epochs"] == 5 and twin.get_params()["frame_embed"] == 16 and twin.sfreq == 128.0
    assert decoder.get_params() == params  # the original is untouched
    assert "epochs=3" in repr(decoder)


def test_cross_val_score_and_grid_search(kdd, kdd_arrays, capfd):
    X, y = kdd_arrays
    decoder = Decoder(KDD, sfreq=kdd.info["sfreq"], ch_names=kdd.ch_names, epochs=1)
    scores = cross_val_score(decoder, X, y, cv=StratifiedKFold(3, shuffle=True, random_state=0))
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
    assert "training" not in capfd.readouterr().err  # no progress bar per fit
    search = GridSearchCV(decoder, {"frame_embed": [16, 32]}, cv=2).fit(X, y)
    assert search.best_params_["frame_embed"] in (16, 32)
    assert search.best_estimator_.model_.config.frame_embed == search.best_params_["frame_embed"]
    assert len(search.cv_results_["mean_test_score"]) == 2


def test_an_aligned_recipe_aligns_new_trials_from_their_own_signal(scp):
    """--align mean: each group's channel means come off, so new trials shifted by a constant offset per channel
    (an electrode offset, a drift between sessions) get the same probabilities; the training groups are aligned one
    by one (one alignment per group in meta_)."""
    recipe = {"prepare": [*named_recipes()["slow-potentials"].prepare, "--align", "mean"],
              "train": ["--workers", "0", "--device", "cpu"]}
    X, y = scp.get_data(), scp.events[:, 2]
    groups = np.arange(len(y)) * 2 // len(y)  # the first and second half, as two sessions
    decoder = Decoder(recipe, sfreq=scp.info["sfreq"], ch_names=scp.ch_names, **SMALL).fit(X, y, groups)
    assert sorted(decoder.meta_["alignment"]["recordings"]) == ["group 0", "group 1"]
    offset = np.linspace(-40e-6, 60e-6, len(scp.ch_names))[None, :, None]  # volts, per channel
    shifted = decoder.predict_proba(X[:50] + offset)
    assert np.allclose(shifted, decoder.predict_proba(X[:50]), atol=1e-5)
    unaligned = Decoder({**recipe, "prepare": recipe["prepare"][:-2]}, sfreq=scp.info["sfreq"],
                        ch_names=scp.ch_names, **SMALL).fit(X, y)
    assert not np.allclose(unaligned.predict_proba(X[:50] + offset), unaligned.predict_proba(X[:50]), atol=1e-3)


def test_save_is_read_by_infer_and_export_writes_onnx_with_parity(scp, tmp_path, bandpower_dir):
    from export.session import OnnxPredictor

    decoder = Decoder("slow-potentials", **SMALL).fit(scp)
    assert list(decoder.classes_) == ["negativity", "positivity"]
    decoder.save(tmp_path / "model.pt")
    epo = bandpower_dir.parent / "raw" / "SelfRegulationSCP1" / "SelfRegulationSCP1_TRAIN-epo.fif"
    assert invoke("prepare", epo, "--out", tmp_path / "scp", "--recipe", "slow-potentials").exit_code == 0
    result = invoke("infer", "--ckpt", tmp_path / "model.pt", "--x", tmp_path / "scp" / "X.npy", "--device", "cpu")
    assert result.exit_code == 0, result.output
    labels = re.findall(r"label=(\w+)", result.output)
    assert labels == list(decoder.predict(scp))  # the CLI's features and model agree with predict

    exported = decoder.export(tmp_path / "model.onnx")
    assert exported.path.is_file() and exported.step == tmp_path / "model.step.onnx" and exported.step.is_file()
    assert exported.parity and max(max(r.logits, r.probs, r.frame_logits) for r in exported.parity) <= 1e-4
    X = np.load(tmp_path / "scp" / "X.npy")[:20]
    onnx_probs = OnnxPredictor(exported.path, "cpu").run(X)["probs"]
    assert np.allclose(onnx_probs, decoder.predict_proba(scp[:20]), atol=1e-5)


@pytest.mark.parametrize("case", ["array without sfreq", "array without labels", "unknown train option",
                                  "data flag as option", "recipe key", "bad recipe flag", "unknown recipe",
                                  "wrong units", "channels mismatch"])
def test_bad_parameters_raise_clear_value_errors(case, kdd, kdd_arrays):
    X, y = kdd_arrays
    info = {"sfreq": kdd.info["sfreq"], "ch_names": kdd.ch_names}
    decoder, args, message = {
        "array without sfreq": (Decoder(KDD), (X, y), "needs sfreq= and ch_names="),
        "array without labels": (Decoder(KDD, **info), (X,), "needs the labels y"),
        "unknown train option": (Decoder(KDD, **info, epoch=3), (X, y), "'epoch' is not an option"),
        "data flag as option": (Decoder(KDD, **info, elec=4), (X, y), "'elec' is not an option"),
        "recipe key": (Decoder({**KDD, "flags": []}, **info), (X, y), "recipe must be"),
        "bad recipe flag": (Decoder({"prepare": ["--features", "nope"]}, **info), (X, y), "--features 'nope'"),
        "unknown recipe": (Decoder("telepathy", **info), (X, y), "no recipe is named 'telepathy'"),
        "wrong units": (Decoder(KDD, **info, units="mV"), (X, y), "units='mV'"),
        "channels mismatch": (Decoder(KDD, sfreq=info["sfreq"], ch_names=["C3"]), (X, y), "n_channels=1"),
    }[case]
    with pytest.raises(ValueError, match=re.escape(message)):
        decoder.fit(*args)
    assert not hasattr(decoder, "model_")


def test_predict_before_fit_is_not_fitted(kdd):
    with pytest.raises(NotFittedError):
        Decoder(KDD).predict(kdd)
