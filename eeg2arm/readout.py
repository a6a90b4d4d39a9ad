"""The linear readout fitted in closed form (`train --fit-readout`): a logistic regression on the model's own
standardized input frames, its L2 strength chosen by accuracy on 5 contiguous inner folds of the training windows
(scikit-learn). With `columns` (`--input-scale column`) each of its inputs, a feature at a frame position, is first
scaled to zero mean and unit sd over the training windows, as benchmarks/accuracy.py's "its features + LR" does; that
scaler is folded into the readout's weights, so the model's graph is the same either way. A two-class fit is also
kept as a Gaussian over its coefficients (laplace.py's `readout_prior`), which `eeg2arm calibrate` updates
with a new subject's trials.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from .errors import UserInputError
from .laplace import readout_prior
from .model import EEGModel

MIN_TRIALS = 10  # 5 inner folds of at least 2 trials


def logistic_cv(y: np.ndarray) -> LogisticRegressionCV:
    """Logistic regression whose C is chosen by accuracy on 5 inner folds of labels y (`inner_folds`), unfitted."""
    return LogisticRegressionCV(Cs=np.logspace(-4, 2, 7), cv=inner_folds(y), scoring="accuracy", max_iter=5000)


def inner_folds(y: np.ndarray) -> KFold | StratifiedKFold:
    """5 contiguous folds in the given order (a recording's trials stay together), unless the training side of one
    would lack a class (trials sorted by class): then 5 folds stratified by class, in order."""
    contiguous, n_classes = KFold(5), len(np.unique(y))
    if all(len(np.unique(y[train])) == n_classes for train, _ in contiguous.split(y)):
        return contiguous
    return StratifiedKFold(5)


def quiet_fit(estimator: Any, X: np.ndarray, y: np.ndarray) -> Any:
    """estimator.fit(X, y). scikit-learn 1.9 announces coming changes of LogisticRegressionCV's defaults on every
    fit; the settings used here are given explicitly, so those notices are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return estimator.fit(X, y)


def last_decision_frames(model: EEGModel, X: np.ndarray) -> torch.Tensor:
    """The standardized frames (N, C, F, n) of windows X (N, C, F, T) that the readout reads for the last decision
    (the n = readout_frames frames up to the last pooled frame's end; zeros before the first frame)."""
    n, pool = model.config.readout_frames, model.config.cnn_time_pool
    was_training = model.training
    model.eval()
    with torch.no_grad():
        x = model.standardized_input(torch.from_numpy(X).to(model.input_mean.device))  # (N, C, F, T)
    model.train(was_training)
    end = x.shape[-1] // pool * pool
    return F.pad(x, (n - 1, 0))[..., end - 1:end - 1 + n]


@torch.no_grad()
def fit_readout(model: EEGModel, X: np.ndarray, y: np.ndarray, columns: bool = False,
                keep_prior: bool = True) -> dict[str, Any] | None:
    """Set model.readout to `logistic_cv`'s fit on the frames the last decision reads of windows X (N, C, F, T),
    y (N,), and zero the network's head: the model's probabilities are then the regression's. With `columns`, the
    regression reads each frame column standardized over X (scikit-learn's StandardScaler, folded into the readout's
    weights and bias). Returns the fit's `readout_prior` (None beyond two classes or MAX_PRIOR_COLUMNS, or without
    `keep_prior`)."""
    classes, k = np.unique(y), model.config.n_classes
    if len(classes) < k or len(y) < MIN_TRIALS:
        raise UserInputError(f"--fit-readout needs {MIN_TRIALS} or more training trials of each of the {k} classes, "
                             f"got {len(y)} of {len(classes)}: give more trials or leave --fit-readout out")
    frames = last_decision_frames(model, X).flatten(1).cpu().double().numpy()  # (N, D = C*F*n), the conv's order
    mean, scale = np.zeros(frames.shape[1]), np.ones(frames.shape[1])  # (D,): the identity unless columns
    if columns:
        scaler = StandardScaler().fit(frames)
        mean, scale = scaler.mean_, scaler.scale_
    columns_read = (frames - mean) / scale  # (N, D)
    fit = quiet_fit(logistic_cv(y), columns_read, y)
    set_readout(model, fit.coef_, fit.intercept_, mean, scale)
    model.silence_network()
    if len(fit.classes_) != 2 or not keep_prior:
        return None
    return readout_prior(columns_read, np.append(fit.coef_[0], fit.intercept_[0]), float(fit.C_[0]), mean, scale)


def set_readout(model: EEGModel, coef: np.ndarray, intercept: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> None:
    """Write a logistic regression of the standardized columns (z - mean) / scale (coef (K', D), intercept (K',); K' =
    1 for two classes) into model.readout, the scaler folded in: w . (z - m) / s = (w / s) . z - (w / s) . m."""
    weight = coef / scale  # (K', D)
    bias = intercept - weight @ mean  # (K',)
    if len(bias) == 1:  # one log-odds d for class 1: logits (-d/2, d/2) give the same softmax
        weight, bias = np.concatenate([-weight, weight]) / 2, np.concatenate([-bias, bias]) / 2
    with torch.no_grad():
        model.readout.weight.copy_(torch.from_numpy(weight).reshape(model.readout.weight.shape))  # (K, C*F, n)
        model.readout.bias.copy_(torch.from_numpy(bias))
