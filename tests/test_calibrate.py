"""`eeg2arm calibrate`: a new subject's labelled trials update a fitted two-class readout (the fit's Laplace
approximation as the prior). The fit's prior is checked against scikit-learn's objective, the update against its own
optimality condition; network and graph unchanged; bad input refused."""
import re
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from eeg2arm.checkpoint import load_model_from_checkpoint
from eeg2arm.infer import predict_logits
from eeg2arm.laplace import prior_penalty, readout_prior
from eeg2arm.readout import last_decision_frames

from test_cli import X_OK, Y_OK, assert_clean_error, run, save_npy
from test_spatial import CUES, MOTOR

N_READ = 8
FIT = ["--classes", "2", "--elec", "32", "--bands", "4", "--frame-embed", "32", "--workers", "0", "--device", "cpu",
       "--readout", str(N_READ), "--fit-readout", "--epochs", "0", "--val-split", "0", "--select", "last"]
TANGENT = [*MOTOR[:-2], "--bands", "mubeta:8-30", "--spatial", "csp-tangent:3", "--frame-window", "0.5",
           "--frame-step", "0.25"]  # real EEG: 6 tangent coordinates of 3 CSP components per 0.5 s frame, 15 frames
READOUT_ALONE = ["--cnn-time-pool", "1", "--frame-embed", "16", "--readout", "15", "--fit-readout", "--input-scale",
                 "column", "--epochs", "0", "--val-split", "0", "--select", "last", "--workers", "0", "--device", "cpu"]
TRAINING, NEW = np.split(np.random.default_rng(0).permutation(100), [70])  # the embedded sample's trials (sorted by
# class): the "cross" fit, then a "new subject"
Y_FIT = np.where(np.arange(70) % 4 == 0, 1 - Y_OK[TRAINING], Y_OK[TRAINING])  # a quarter flipped: not separable,
# so that the fit's L2 penalty is strong enough to show in its optimality condition


@pytest.fixture(scope="module", params=["column", "feature"])
def fitted(request, tmp_path_factory):
    """(checkpoint, its folder) of a readout fitted alone on 70 of the trials, with each --input-scale that keeps a
    per-feature input."""
    folder = tmp_path_factory.mktemp(f"fit-{request.param}")
    save = folder / "fit.pt"
    result = run("train", "--x", save_npy(folder, "X.npy", X_OK[TRAINING]), "--y",
                 save_npy(folder, "y.npy", Y_FIT), "--save", save, *FIT, "--input-scale", request.param)
    assert result.exit_code == 0, result.output
    return save, folder


def read_columns(ckpt, X: np.ndarray) -> tuple[np.ndarray, dict]:
    """The prior's standardized columns and a 1 (N, D + 1) of windows X, and the prior."""
    model, meta = load_model_from_checkpoint(ckpt)
    prior = {k: v if k == "C" else v.double().numpy() for k, v in meta["metrics"]["readout_prior"].items()}
    frames = last_decision_frames(model, X).flatten(1).double().numpy()
    read = (frames - prior["mean"]) / prior["scale"]
    return np.hstack([read, np.ones((len(read), 1))]), prior


def log_odds(ckpt, X: np.ndarray) -> np.ndarray:
    """The checkpoint's log-odds of class 1 on X, as the model computes them."""
    model, _ = load_model_from_checkpoint(ckpt)
    logits = predict_logits(model, X)
    return logits[:, 1] - logits[:, 0]


def coefficients(ckpt, prior: dict) -> np.ndarray:
    """The checkpoint's readout as coefficients of the prior's columns and a 1 (D + 1,): its weights hold the log-odds
    d / 2 for class 1 and -d / 2 for class 0 of the model's frames z; d . z + b = (d * scale) . u + b + d . mean."""
    state = torch.load(ckpt, weights_only=True)["model_state"]
    weight, bias = state["readout.weight"].double().numpy(), state["readout.bias"].double().numpy()
    d, b = (weight[1] - weight[0]).reshape(-1), bias[1] - bias[0]
    return np.append(d * prior["scale"], b + d @ prior["mean"])


def sum_objective(read: np.ndarray, y: np.ndarray, C: float) -> Callable[[np.ndarray], np.ndarray]:
    """The gradient of sum log-loss + |w|^2 / (2C) in v = (w, intercept), columns `read` (N, D + 1, the last all 1)."""
    return lambda v: read.T @ (expit(read @ v) - y) + np.append(v[:-1], 0) / C


@pytest.mark.parametrize("C", [0.01, 1.0])
def test_the_prior_is_the_curvature_of_scikit_learns_objective(C):
    """scikit-learn's logistic regression minimizes C * (log-loss summed over the trials) + |w|^2 / 2, intercept
    free: at its optimum that sum's gradient vanishes (the convention readout_prior builds on), and readout_prior's
    Hessian is the derivative of that gradient there (by finite differences)."""
    rng = np.random.default_rng(0)
    columns = rng.normal(size=(200, 6))
    y = (columns[:, 0] + rng.normal(size=200) > 0).astype(int)  # not separable
    fit = LogisticRegression(C=C, max_iter=10000, tol=1e-10).fit(columns, y)
    coef = np.append(fit.coef_[0], fit.intercept_[0])
    read = np.hstack([columns, np.ones((200, 1))])
    gradient = sum_objective(read, y, C)
    assert np.abs(gradient(coef)).max() < 1e-5 and np.abs(coef[:-1] / C).max() > 0.1  # the penalty counts
    prior = readout_prior(columns, coef, C, np.zeros(6), np.ones(6))
    factor = prior["factor"].double().numpy()
    hessian = factor.T @ factor + np.diag(prior_penalty(prior))
    step = 1e-5
    numeric = np.stack([(gradient(coef + step * e) - gradient(coef - step * e)) / (2 * step) for e in np.eye(7)])
    assert np.abs(numeric - hessian).max() < 1e-4 * np.abs(numeric).max()


def test_a_fitted_readout_keeps_its_fit_as_the_prior(fitted):
    """The checkpoint's prior is the fit the model decides by: its coefficients give the model's log-odds, and they
    are the optimum of its objective within scikit-learn's tolerance (1e-4 a trial)."""
    ckpt, _ = fitted
    read, prior = read_columns(ckpt, X_OK[TRAINING])
    assert np.abs(read @ prior["coef"] - log_odds(ckpt, X_OK[TRAINING])).max() < 1e-4
    assert np.abs(sum_objective(read, Y_FIT, prior["C"])(prior["coef"])).max() < 0.01
    assert prior["factor"].shape == (min(70, read.shape[1]), read.shape[1])  # the fewer of trials and columns


def test_calibration_is_the_prior_updated_by_the_new_trials_and_changes_only_the_readout(fitted, tmp_path):
    """The calibrated readout satisfies the update's optimality condition (weight * the new trials' log-loss
    gradient + H (v - v0) = 0), and every other weight of the model is the checkpoint's."""
    ckpt, folder = fitted
    new, weight = NEW[:10], 5.0
    save = tmp_path / "new.pt"
    result = run("calibrate", "--ckpt", ckpt, "--x", save_npy(tmp_path, "X.npy", X_OK[new]), "--y",
                 save_npy(tmp_path, "y.npy", Y_OK[new]), "--save", save, "--weight", weight)
    assert result.exit_code == 0, result.output
    assert "calibrated on 10 trials, each weighted as 5 training trials" in result.output
    read, prior = read_columns(ckpt, X_OK[new])
    z_new = log_odds(save, X_OK[new])
    v = coefficients(save, prior)
    assert np.abs(read @ v - z_new).max() < 1e-4
    hessian = prior["factor"].T @ prior["factor"] + np.diag(prior_penalty(prior))
    condition = weight * read.T @ (expit(read @ v) - Y_OK[new]) + hessian @ (v - prior["coef"])
    assert np.abs(condition).max() < 1e-2 * np.abs(hessian @ (v - prior["coef"])).max()
    assert np.abs(v - prior["coef"]).max() > 1e-3  # it moved
    before, after = torch.load(ckpt, weights_only=True), torch.load(save, weights_only=True)
    for name, tensor in before["model_state"].items():
        assert torch.equal(tensor, after["model_state"][name]) == (not name.startswith("readout.")), name
    calibration = after["metrics"]["calibration"]
    assert [(c["trials"], c["weight"]) for c in calibration] == [(10, weight)]
    assert after["metrics"]["train_options"] == before["metrics"]["train_options"]


def test_a_tiny_weight_keeps_the_model_and_calibrations_chain(fitted, tmp_path):
    """Weight 1e-9: the checkpoint's decisions unchanged; a calibrated checkpoint calibrates again (its posterior is
    the next prior), recorded in order."""
    ckpt, _ = fitted
    data = ["--x", save_npy(tmp_path, "X.npy", X_OK[NEW]), "--y", save_npy(tmp_path, "y.npy", Y_OK[NEW])]
    assert run("calibrate", "--ckpt", ckpt, *data, "--save", tmp_path / "same.pt", "--weight", 1e-9).exit_code == 0
    np.testing.assert_allclose(log_odds(tmp_path / "same.pt", X_OK), log_odds(ckpt, X_OK), rtol=1e-4, atol=1e-4)
    assert run("calibrate", "--ckpt", ckpt, *data, "--save", tmp_path / "one.pt").exit_code == 0
    assert run("calibrate", "--ckpt", tmp_path / "one.pt", *data, "--save", tmp_path / "two.pt").exit_code == 0
    chain = torch.load(tmp_path / "two.pt", weights_only=True)["metrics"]["calibration"]
    assert [c["ckpt"] for c in chain] == [str(ckpt), str(tmp_path / "one.pt")] and chain[0]["weight"] == 10.0


def test_calibrate_refuses_what_it_cannot_update_in_one_line_and_writes_nothing(fitted, tmp_path):
    ckpt, _ = fitted
    save = tmp_path / "new.pt"
    data = ["--x", save_npy(tmp_path, "X.npy", X_OK[NEW]), "--y", save_npy(tmp_path, "y.npy", Y_OK[NEW])]
    for weight in ("0", "-1", "nan", "inf", "1e7"):
        assert_clean_error(run("calibrate", "--ckpt", ckpt, *data, "--save", save, "--weight", weight),
                           "--weight must be a number > 0 and at most 1e+06", save)
    network = tmp_path / "network.pt"  # a trained network: no fitted readout to update
    assert run("train", *data, "--save", network, *FIT[:12], "--epochs", "1").exit_code == 0
    assert_clean_error(run("calibrate", "--ckpt", network, *data, "--save", save),
                       "holds no fitted two-class readout to update", save)
    three = tmp_path / "three.pt"  # three classes: no prior is kept
    labels = ["--y", save_npy(tmp_path, "y3.npy", np.arange(30) % 3)]
    assert run("train", data[0], data[1], *labels, "--save", three, *FIT[2:], "--classes", "3").exit_code == 0
    assert_clean_error(run("calibrate", "--ckpt", three, *data, "--save", save),
                       "holds no fitted two-class readout to update", save)
    assert_clean_error(run("calibrate", "--ckpt", ckpt, "--x", save_npy(tmp_path, "Xc.npy", X_OK[NEW, :16]),
                           data[2], data[3], "--save", save), "do not match config (C=32, F=4)", save)
    assert_clean_error(run("calibrate", "--ckpt", ckpt, data[0], data[1], "--y",
                           save_npy(tmp_path, "y2.npy", Y_OK[NEW] + 1), "--save", save),
                       "labels must be in [0, 1]", save)
    shorter = save_npy(tmp_path, "Xt.npy", X_OK[NEW, ..., :12])
    assert_clean_error(run("calibrate", "--ckpt", ckpt, "--x", shorter, data[2], data[3], "--save", save),
                       "windows of T=12 frames but the readout was fitted on T=15", save)
    edited = torch.load(ckpt, weights_only=True)
    edited["metrics"]["readout_prior"]["scale"] = edited["metrics"]["readout_prior"]["scale"][:-1]
    torch.save(edited, tmp_path / "edited.pt")
    assert_clean_error(run("calibrate", "--ckpt", tmp_path / "edited.pt", *data, "--save", save),
                       "metrics.readout_prior is not the fit `train --fit-readout` keeps", save)
    ensemble = tmp_path / "ensemble.pt"  # its members fitted alone, then trained an epoch: epoch 0 may be kept
    assert run("train", *data, "--save", ensemble, *FIT[:-5], "1", "--val-split", "0.2", "--select", "loss",
               "--ensemble", "2", "--lr", "1e-12").exit_code == 0  # a step too small to beat the fit: epoch 0 kept
    members = torch.load(ensemble, weights_only=True)["metrics"]["members"]
    assert 0 in [m["best_epoch"] for m in members] and not any("readout_prior" in m for m in members)
    assert_clean_error(run("calibrate", "--ckpt", ensemble, *data, "--save", save),
                       "holds no fitted two-class readout to update", save)
    volts = save_npy(tmp_path, "Xv.npy", X_OK[NEW] * np.float32(1e6))  # another unit: the solver finds no optimum
    assert_clean_error(run("calibrate", "--ckpt", ckpt, "--x", volts, data[2], data[3], "--save", save),
                       "the solver did not converge", save)


def test_calibrate_takes_the_first_trials_and_never_overwrites_its_prior(fitted, tmp_path, caplog):
    """--trials N calibrates on the first N trials (as if X.npy and y.npy held only them); more than there are, or
    --save at --ckpt, is refused with the checkpoint untouched; windows with no meta.json say they go unchecked."""
    ckpt, _ = fitted
    data = ["--x", save_npy(tmp_path, "X.npy", X_OK[NEW]), "--y", save_npy(tmp_path, "y.npy", Y_OK[NEW])]
    first = tmp_path / "first"
    first.mkdir()
    sliced = ["--x", save_npy(first, "X.npy", X_OK[NEW[:10]]), "--y", save_npy(first, "y.npy", Y_OK[NEW[:10]])]
    with caplog.at_level("WARNING", logger="eeg2arm"):
        result = run("calibrate", "--ckpt", ckpt, *data, "--trials", 10, "--save", tmp_path / "ten.pt")
    assert result.exit_code == 0 and "calibrated on 10 trials" in result.output, result.output
    assert "no meta.json beside X.npy: the data's recipe is not checked" in caplog.text
    assert run("calibrate", "--ckpt", ckpt, *sliced, "--save", tmp_path / "sliced.pt").exit_code == 0
    np.testing.assert_array_equal(log_odds(tmp_path / "ten.pt", X_OK), log_odds(tmp_path / "sliced.pt", X_OK))
    assert_clean_error(run("calibrate", "--ckpt", ckpt, *data, "--trials", len(NEW) + 1, "--save", tmp_path / "x.pt"),
                       f"--trials {len(NEW) + 1}: X.npy holds {len(NEW)} trials", tmp_path / "x.pt")
    assert_clean_error(run("calibrate", "--ckpt", ckpt, data[0], data[1], "--y", save_npy(tmp_path, "y_short.npy",
                           Y_OK[NEW[:-1]]), "--trials", 5, "--save", tmp_path / "x.pt"), "give one label per trial",
                       tmp_path / "x.pt")
    kept = ckpt.read_bytes()
    assert_clean_error(run("calibrate", "--ckpt", ckpt, *data, "--save", ckpt),
                       "calibrating would overwrite the model it starts from")
    assert ckpt.read_bytes() == kept


def test_a_calibrated_checkpoint_does_not_resume_its_training(fitted, tmp_path):
    ckpt, folder = fitted
    data = ["--x", save_npy(tmp_path, "X.npy", X_OK[NEW]), "--y", save_npy(tmp_path, "y.npy", Y_OK[NEW])]
    assert run("calibrate", "--ckpt", ckpt, *data, "--save", tmp_path / "new.pt").exit_code == 0
    assert_clean_error(run("train", "--x", folder / "X.npy", "--y", folder / "y.npy", "--save", tmp_path / "r.pt",
                           *FIT[:-5], "2", "--val-split", "0", "--select", "last", "--resume", tmp_path / "new.pt"),
                       "was calibrated (eeg2arm calibrate) after its run", tmp_path / "r.pt")


def test_a_prior_is_kept_up_to_max_prior_columns():
    from eeg2arm.laplace import MAX_PRIOR_COLUMNS

    rng = np.random.default_rng(0)
    for n_columns, kept in ((MAX_PRIOR_COLUMNS - 1, True), (MAX_PRIOR_COLUMNS, False)):  # with the intercept: at most
        columns = rng.normal(size=(20, n_columns))
        prior = readout_prior(columns, np.zeros(n_columns + 1), 1.0, np.zeros(n_columns), np.ones(n_columns))
        assert (prior is not None) == kept
        if kept:
            assert prior["factor"].shape == (20, n_columns + 1)


def test_a_readout_too_wide_keeps_no_prior_and_says_so_once(tmp_path):
    """64 electrodes (the sample's twice) x 4 bands x 8 frames: 2048 columns and an intercept, over
    MAX_PRIOR_COLUMNS. An ensemble's members keep no prior whatever their width, and say nothing of it."""
    save, wide = tmp_path / "wide.pt", np.concatenate([X_OK, X_OK[:, ::-1]], axis=1)  # (100, 64, 4, 15)
    data = ["--x", save_npy(tmp_path, "X.npy", wide), "--y", save_npy(tmp_path, "y.npy", Y_OK)]
    result = run("train", *data, "--save", save, *FIT[:3], "64", *FIT[4:])
    assert result.exit_code == 0 and result.output.count("no readout_prior kept") == 1, result.output
    assert "readout_prior" not in torch.load(save, weights_only=True)["metrics"]
    ensemble = run("train", *data, "--save", tmp_path / "ensemble.pt", *FIT[:3], "64", *FIT[4:-5], "1", "--ensemble",
                   "2")
    assert ensemble.exit_code == 0 and "member 2/2" in ensemble.output, ensemble.output
    assert "readout_prior" not in ensemble.output


def test_the_decoder_calibrates_epochs_and_labelled_arrays_alike(raw_dir):
    """A Decoder fitted on arrays (labels y) calibrates on an array with y, or on an Epochs labelled by its events,
    to the same model; labels given are the ones learnt (flipped labels pull the decisions to them); y must be 1-D
    labels of its classes, and an array needs y."""
    import mne

    from eeg2arm import Decoder

    def epochs_of(subject: str) -> mne.Epochs:
        raw = mne.io.read_raw(raw_dir / "eegmmidb" / subject / f"{subject}R04.edf", verbose="error")
        events, _ = mne.events_from_annotations(raw, {"T1": 1, "T2": 2}, verbose="error")
        return mne.Epochs(raw, events, {"left": 1, "right": 2}, 0, 4 - 1 / raw.info["sfreq"], baseline=None,
                          preload=True, verbose="error")

    train = mne.concatenate_epochs([epochs_of("S001"), epochs_of("S002")], verbose="error")
    recipe = {"prepare": TANGENT, "train": READOUT_ALONE, "groups": False}
    names = np.array(["left", "right"])
    X, y = train.get_data(), names[train.events[:, 2] - 1]
    new = epochs_of("S003")
    X_new, y_new = new.get_data(), names[new.events[:, 2] - 1]
    flipped = names[new.events[:, 2] % 2]  # left <-> right
    decoder = Decoder(recipe, sfreq=train.info["sfreq"], ch_names=train.ch_names).fit(X, y)
    before = np.mean(decoder.predict(X_new) == flipped)
    on_array = decoder.calibrate(X_new, flipped, weight=100.0).predict_proba(X_new)
    assert np.mean(decoder.predict(X_new) == flipped) > before
    relabelled = new.copy()
    relabelled.event_id = {"left": 2, "right": 1}  # the same trials, their events named the other way
    on_epochs = Decoder(recipe, sfreq=train.info["sfreq"], ch_names=train.ch_names).fit(X, y).calibrate(
        relabelled, weight=100.0).predict_proba(X_new)
    assert np.abs(on_array - on_epochs).max() < 1e-5
    for bad, message in ((y_new[:, None], "one label per trial"), (np.where(y_new == "left", "up", y_new), "among"),
                         (None, "needs the labels y of an array")):
        with pytest.raises(ValueError, match=message):
            decoder.calibrate(X_new, bad)


def test_a_new_subject_of_real_eeg_calibrates_and_exports_with_parity(raw_dir, tmp_path):
    """Motor imagery: a tangent-space readout fitted on S001 and S002 (each aligned from its own signal), S003
    prepared --like it (aligned from its own), calibrated on its first 10 trials; the recipe's meta.json is checked
    (another recipe's is refused), and the calibrated model exports to ONNX with parity and streams S003's next run
    aligned from the calibration's meta.json, as a lab session would."""
    files = [raw_dir / "eegmmidb" / s / f"{s}R04.edf" for s in ("S001", "S002")]
    recipe = [*CUES, *TANGENT, "--align", "euclidean"]
    assert run("prepare", *files, "--out", tmp_path / "cross", *recipe).exit_code == 0
    assert run("prepare", raw_dir / "eegmmidb" / "S003" / "S003R04.edf", "--out", tmp_path / "new", "--like",
               tmp_path / "cross" / "meta.json").exit_code == 0
    X, y = np.load(tmp_path / "new" / "X.npy"), np.load(tmp_path / "new" / "y.npy")
    result = run("train", "--x", tmp_path / "cross" / "X.npy", "--y", tmp_path / "cross" / "y.npy", "--save",
                 tmp_path / "cross.pt", "--classes", 2, "--elec", X.shape[1], "--bands", X.shape[2], *READOUT_ALONE)
    assert result.exit_code == 0, result.output
    cal = tmp_path / "new" / "cal"
    cal.mkdir()
    (cal / "meta.json").write_text((tmp_path / "new" / "meta.json").read_text())
    data = ["--x", save_npy(cal, "X.npy", X[:10]), "--y", save_npy(cal, "y.npy", y[:10])]
    result = run("calibrate", "--ckpt", tmp_path / "cross.pt", *data, "--save", tmp_path / "S003.pt")
    assert result.exit_code == 0, result.output
    assert np.abs(log_odds(tmp_path / "S003.pt", X) - log_odds(tmp_path / "cross.pt", X)).max() > 1e-3
    other = tmp_path / "other"  # the recipe fitted on S003 itself: other CSP filters, so another recipe: refused
    assert run("prepare", raw_dir / "eegmmidb" / "S003" / "S003R04.edf", "--out", other, *recipe).exit_code == 0
    refused = run("calibrate", "--ckpt", tmp_path / "cross.pt", *data, "--meta", other / "meta.json", "--save",
                  tmp_path / "x.pt")
    assert_clean_error(refused, "prepare --like the training data's meta.json", tmp_path / "x.pt")
    assert len(refused.output) < 300 and "csp_filters[" in refused.output  # the first entry that differs, not all
    result = run("export", "--ckpt", tmp_path / "S003.pt", "--out", tmp_path / "S003.onnx", "--x", cal / "X.npy")
    assert result.exit_code == 0 and "parity" in result.output, result.output
    result = run("stream", "--raw", raw_dir / "eegmmidb" / "S003" / "S003R08.edf", "--onnx", tmp_path / "S003.onnx",
                 "--align-from", tmp_path / "new" / "meta.json", "--fast")  # a later run, aligned as calibrated
    assert result.exit_code == 0 and re.search(r"decisions=[1-9]", result.output), result.output


def test_the_decoder_calibrates_as_the_cli_does(raw_dir, tmp_path):
    """eeg2arm.Decoder.calibrate on a new subject's recordings (S003, aligned from its own signal) gives the model
    that `prepare --like` + `eeg2arm calibrate` give from the same decoder's checkpoint and meta.json."""
    import json

    import mne

    from eeg2arm import Decoder

    def opened(subject: str) -> list:
        return [mne.io.read_raw(raw_dir / "eegmmidb" / subject / f"{subject}R04.edf", verbose="error")]

    recipe = {"prepare": [*map(str, CUES), *TANGENT, "--align", "euclidean"], "train": READOUT_ALONE, "groups": False}
    decoder = Decoder(recipe).fit(opened("S001") + opened("S002"), groups=["S001", "S002"])
    decoder.save(tmp_path / "cross.pt")
    (tmp_path / "meta.json").write_text(json.dumps(decoder.meta_))
    before = decoder.predict_proba(opened("S003"))
    after = decoder.calibrate(opened("S003"), weight=5.0).predict_proba(opened("S003"))
    assert np.abs(after - before).max() > 1e-3
    assert run("prepare", raw_dir / "eegmmidb" / "S003" / "S003R04.edf", "--out", tmp_path / "new", "--like",
               tmp_path / "meta.json").exit_code == 0
    result = run("calibrate", "--ckpt", tmp_path / "cross.pt", "--x", tmp_path / "new" / "X.npy", "--y",
                 tmp_path / "new" / "y.npy", "--save", tmp_path / "S003.pt", "--weight", 5)
    assert result.exit_code == 0, result.output
    model, _ = load_model_from_checkpoint(tmp_path / "S003.pt")
    cli = torch.softmax(torch.from_numpy(predict_logits(model, np.load(tmp_path / "new" / "X.npy"))), -1).numpy()
    assert np.abs(after - cli).max() < 1e-5
    with pytest.raises(ValueError, match="recordings are labelled by their events"):
        decoder.calibrate(opened("S003"), y=np.array(["left_fist"] * 15))
    network = ["--cnn-time-pool", "1", "--frame-embed", "16", "--epochs", "1", "--val-split", "0", "--select", "last",
               "--workers", "0", "--device", "cpu"]  # a trained network: nothing to calibrate
    with pytest.raises(ValueError, match="has nothing to calibrate"):
        Decoder({**recipe, "train": network}).fit(opened("S001") + opened("S002"),
                                                  groups=["S001", "S002"]).calibrate(opened("S003"))
