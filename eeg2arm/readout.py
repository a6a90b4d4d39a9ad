"""The linear readout fitted in closed form (`train --fit-readout`): a logistic regression on the model's own
standardized input frames, its L2 strength chosen by accuracy on 5 contiguous inner folds of the training windows
(scikit-learn). With `columns` (`--input-scale column`) each of its inputs, a feature at a frame position, is first
scaled to zero mean and unit sd over the training windows, as benchmarks/accuracy.py's "its features + LR" does; that
scaler is folded into the readout's weights, so the model's graph is the same either way. A two-class fit is also
kept as a Gaussian over its coefficients (`readout_prior`), which `eeg2arm calibrate` (calibrate.py) updates with a
new subject's trials.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from .errors import UserInputError
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
def fit_readout(model: EEGModel, X: np.ndarray, y: np.ndarray, columns: bool = False) -> dict[str, Any] | None:
    """Set model.readout to `logistic_cv`'s fit on the frames the last decision reads of windows X (N, C, F, T),
    y (N,), and zero the network's head: the model's probabilities are then the regression's. With `columns`, the
    regression reads each frame column standardized over X (scikit-learn's StandardScaler, folded into the readout's
    weights and bias). Returns the fit's `readout_prior` (None beyond two classes or MAX_PRIOR_COLUMNS)."""
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
    if len(fit.classes_) != 2:
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


MAX_PRIOR_COLUMNS = 2048  # a prior's factor is at most this square in float32 (16 MB); wider fits keep none


def readout_prior(columns: np.ndarray, coef: np.ndarray, C: float, mean: np.ndarray,
                  scale: np.ndarray) -> dict[str, Any] | None:
    """A two-class fit as a Gaussian over its coefficients (Laplace's approximation), kept in the checkpoint: its
    optimum `coef` (D + 1: the weights of the standardized columns (N, D), then the intercept), C, the columns'
    scaler (mean, scale), and the curvature of its objective there, H = F'F + I / C on the weights (scikit-learn's
    penalty; the intercept unpenalized), F'F = sum p(1 - p) u u' over the training windows (u = the columns and a 1).
    F is stored as a triangular factor of min(N, D + 1) rows, so the prior grows with the trials or the columns,
    whichever is fewer. A new subject's trials then update the fit as if they had been among the training windows
    (`laplace_update`). None when D + 1 > MAX_PRIOR_COLUMNS."""
    if len(coef) > MAX_PRIOR_COLUMNS:
        return None
    read = np.hstack([columns, np.ones((len(columns), 1))])  # (N, D + 1)
    p = expit(read @ coef)  # (N,)
    return {"coef": torch.from_numpy(coef), "factor": curvature_factor(read, p * (1 - p)), "C": C,
            "mean": torch.from_numpy(np.asarray(mean, dtype=np.float64)),
            "scale": torch.from_numpy(np.asarray(scale, dtype=np.float64))}


def curvature_factor(read: np.ndarray, weights: np.ndarray, factor: torch.Tensor | None = None) -> torch.Tensor:
    """R (min(n, D + 1), D + 1) with R'R = sum weights u u' over the rows u of read (N, D + 1), plus factor'factor
    when a factor is given (n counts its rows too): the R of a QR decomposition."""
    rows = np.sqrt(weights)[:, None] * read
    if factor is not None:
        rows = np.vstack([factor.double().numpy(), rows])
    return torch.from_numpy(np.linalg.qr(rows, mode="r")).float()


def check_prior(prior: Any, n_columns: int, where: str) -> None:
    """UserInputError unless `prior` is a readout_prior of a readout of n_columns columns (D), as readout_prior
    writes it."""
    shapes = {"coef": (n_columns + 1,), "mean": (n_columns,), "scale": (n_columns,)}
    ok = (isinstance(prior, dict) and set(prior) == {*shapes, "factor", "C"}
          and all(isinstance(prior[k], torch.Tensor) and tuple(prior[k].shape) == s for k, s in shapes.items())
          and isinstance(prior["factor"], torch.Tensor) and prior["factor"].dim() == 2
          and prior["factor"].shape[1] == n_columns + 1 and isinstance(prior["C"], float) and prior["C"] > 0
          and all(bool(torch.isfinite(prior[k]).all()) for k in ("coef", "mean", "scale", "factor"))
          and bool((prior["scale"] > 0).all()))
    if not ok:
        raise UserInputError(f"{where}'s metrics.readout_prior is not the fit `train --fit-readout` keeps (edited, or "
                             f"from another program): retrain it")


def laplace_update(read: np.ndarray, y: np.ndarray, prior: dict[str, Any],
                   weight: float) -> tuple[np.ndarray, torch.Tensor, bool]:
    """The prior's fit updated by trials `read` (N, D + 1: their standardized columns and a 1), labels y (N,) in
    {0, 1}, each weighted `weight`: the minimum of weight * their log-loss + (v - v0)' H (v - v0) / 2 (scipy's
    trust-region Newton-CG), H the prior's curvature. Returns (its coefficients (D + 1,), the posterior's curvature
    factor, whether the solver converged)."""
    start, factor, penalty = prior["coef"].double().numpy(), prior["factor"].double().numpy(), prior_penalty(prior)

    def curved(step: np.ndarray) -> np.ndarray:  # H step, H = factor'factor + diag(penalty)
        return factor.T @ (factor @ step) + penalty * step

    def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
        z, step = read @ v, v - start  # (N,), (D + 1,)
        loss = weight * np.sum(np.logaddexp(0, z) - y * z) + step @ curved(step) / 2
        return loss, weight * read.T @ (expit(z) - y) + curved(step)

    def curved_at(v: np.ndarray, direction: np.ndarray) -> np.ndarray:  # the objective's Hessian times a direction
        p = expit(read @ v)
        return curved(direction) + weight * read.T @ (p * (1 - p) * (read @ direction))

    result = minimize(objective, start, jac=True, hessp=curved_at, method="trust-ncg", options={"gtol": 1e-8})
    p = expit(read @ result.x)
    converged = bool(np.all(np.isfinite(result.x)) and np.isfinite(result.fun)
                     and np.abs(result.jac).max() <= 1e-5 * (1 + abs(result.fun)))
    return result.x, curvature_factor(read, weight * p * (1 - p), prior["factor"]), converged


def prior_penalty(prior: dict[str, Any]) -> np.ndarray:
    """The diagonal I / C of the prior's curvature (D + 1,): the weights' L2 penalty, none on the intercept."""
    penalty = np.full(len(prior["coef"]), 1 / prior["C"])
    penalty[-1] = 0.0
    return penalty
