"""`eeg2arm calibrate`: a new subject's labelled trials update a checkpoint's fitted two-class readout.

The checkpoint's regression (train --fit-readout --epochs 0) is kept as a Gaussian over its coefficients (readout.py's
`readout_prior`: its optimum and the curvature of its objective there). Calibration is the Bayesian update of that
fit: the new trials' log-loss, each trial weighted `weight` training trials, plus the prior's quadratic, minimized
(scipy's trust-region Newton-CG). To second order it is the regression refitted on the training windows and the new
trials together, without the training windows; on the inner criterion (docs/accuracy.md, stop 33) 10 calibration
trials weighted 10 scored as that refit did. The network, the input standardization and the graph stay as they were,
so export, streaming and serving take the new checkpoint as any other.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import expit

from .atomic import check_writable
from .checkpoint import load_model_from_checkpoint, save_checkpoint
from .data import check_labels, check_windows
from .errors import UserInputError
from .readout import curvature_factor, last_decision_frames, prior_penalty, set_readout
from .train import check_same_model

DEFAULT_WEIGHT = 10.0  # rule AI (docs/accuracy.md, stop 33): 10 against 3 and 30 on the inner criterion


def calibrate(ckpt: str | Path, X: np.ndarray, y: np.ndarray, save: str | Path, weight: float = DEFAULT_WEIGHT,
              data_fields: dict[str, Any] | None = None, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Update `ckpt`'s fitted readout with labelled windows X (N, C, F, T), y (N,) prepared like its training data
    (`data_fields`: their meta.json's names, checked against the checkpoint's), and save the result at `save`; returns
    its metrics. Any number of trials, one class only too: the prior keeps the fit defined."""
    if not (math.isfinite(weight) and weight > 0):
        raise UserInputError(f"--weight must be a number > 0 (each new trial counts as that many training trials), "
                             f"got {weight}")
    save = Path(save)
    check_writable(save, "--save")
    model, meta = load_model_from_checkpoint(ckpt, "cpu")
    prior = meta["metrics"].get("readout_prior")
    if prior is None:
        raise UserInputError(f"{ckpt} holds no fitted two-class readout to update: calibrate takes a checkpoint of "
                             f"`train --fit-readout --epochs 0` on two classes, one network (e.g. "
                             f"motor-imagery-cross); fine-tune others with `train --init`")
    if data_fields:
        check_same_model(meta["config"], dataclasses.replace(meta["config"], **data_fields), "calibrate --ckpt")
    X = check_windows(X, model.config, single_ok=False)
    y = check_labels(y, len(X), model.config.n_classes, training=False)
    mean, scale = prior["mean"].numpy(), prior["scale"].numpy()
    read = (last_decision_frames(model, X).flatten(1).double().numpy() - mean) / scale  # (N, D)
    read = np.hstack([read, np.ones((len(read), 1))])  # (N, D + 1): the intercept's column
    start, factor, penalty = prior["coef"].numpy(), prior["factor"].double().numpy(), prior_penalty(prior)

    def curved(step: np.ndarray) -> np.ndarray:  # H step, H = factor'factor + diag(penalty): the prior's curvature
        return factor.T @ (factor @ step) + penalty * step

    def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
        z, step = read @ v, v - start  # (N,), (D + 1,)
        loss = weight * np.sum(np.logaddexp(0, z) - y * z) + step @ curved(step) / 2
        return loss, weight * read.T @ (expit(z) - y) + curved(step)

    def curved_at(v: np.ndarray, direction: np.ndarray) -> np.ndarray:  # the objective's Hessian times a direction
        p = expit(read @ v)
        return curved(direction) + weight * read.T @ (p * (1 - p) * (read @ direction))

    result = minimize(objective, start, jac=True, hessp=curved_at, method="trust-ncg", options={"gtol": 1e-8})
    if not np.all(np.isfinite(result.x)):
        raise UserInputError(f"calibrate found no finite update of {ckpt}'s readout on these trials; check X.npy")
    before = float(np.mean((read @ start > 0) == (y == 1)))
    after = float(np.mean((read @ result.x > 0) == (y == 1)))
    set_readout(model, result.x[None, :-1], result.x[-1:], mean, scale)
    p = expit(read @ result.x)
    posterior = {**prior, "coef": torch.from_numpy(result.x),
                 "factor": curvature_factor(read, weight * p * (1 - p), prior["factor"])}
    metrics = {**meta["metrics"], "readout_prior": posterior,
               "calibration": [*meta["metrics"].get("calibration", []),
                               {"ckpt": str(ckpt), "trials": len(y), "weight": weight, "accuracy_before": before,
                                "accuracy_after": after}]}
    save_checkpoint(save, model, meta["example_input_shape"], meta["epoch"], metrics)
    echo(f"calibrated on {len(y)} trials, each weighted as {weight:g} training trials: their accuracy "
         f"{before:.3f} before, {after:.3f} after; saved to {save}")
    return metrics
