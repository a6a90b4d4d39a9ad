"""A fitted two-class readout as a Gaussian over its coefficients (Laplace's approximation), and its update by new
trials: what `train --fit-readout` keeps in metrics.readout_prior and `eeg2arm calibrate` (calibrate.py) updates.

The regression (readout.py: scikit-learn's C * sum of log-losses + |w|^2 / 2, intercept free) is kept as its optimum
and the curvature of that objective there; new trials, each weighted as `weight` training windows, move it to the
minimum of their weighted log-loss plus the prior's quadratic: to second order, the regression refitted on the
training windows and the new trials together.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import expit

from .errors import UserInputError

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
    read = with_intercept(columns)  # (N, D + 1)
    p = expit(read @ coef)  # (N,)
    return {"coef": torch.from_numpy(coef), "factor": curvature_factor(read, p * (1 - p)), "C": C,
            "mean": torch.from_numpy(np.asarray(mean, dtype=np.float64)),
            "scale": torch.from_numpy(np.asarray(scale, dtype=np.float64))}


def with_intercept(columns: np.ndarray) -> np.ndarray:
    """The standardized columns (N, D) and a column of ones (N, D + 1): what a prior's coefficients read."""
    return np.hstack([columns, np.ones((len(columns), 1))])


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
