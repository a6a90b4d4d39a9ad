"""`eeg2arm calibrate`: a new subject's labelled trials update a checkpoint's fitted two-class readout.

The checkpoint's regression (train --fit-readout --epochs 0) is kept as a Gaussian over its coefficients (laplace.py's
`readout_prior`: its optimum and the curvature of its objective there). Calibration is the Bayesian update of that
fit (laplace.py's `laplace_update`): the new trials' log-loss, each trial weighted `weight` training trials, plus the
prior's quadratic, minimized. To second order it is the regression refitted on the training windows and the new
trials together, without the training windows; on the inner criterion (docs/accuracy.md, stop 33) 10 calibration
trials weighted 10 scored as that refit did. The network, the input standardization and the graph stay as they were,
so export, streaming and serving take the new checkpoint as any other.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import check_writable
from .checkpoint import load_model_from_checkpoint, save_checkpoint
from .config import CALIBRATION_WEIGHT
from .data import check_labels, check_windows
from .errors import UserInputError
from .evaluate import check_data_meta
from .laplace import check_prior, laplace_update, with_intercept
from .readout import last_decision_frames, set_readout

MAX_WEIGHT = 1e6  # a new trial counts as at most this many training trials (beyond, float64 overflows the loss)


def calibrate(ckpt: str | Path, X: np.ndarray, y: np.ndarray, save: str | Path, weight: float = CALIBRATION_WEIGHT,
              data_fields: dict[str, Any] | None = None, echo: Callable[[str], None] = print,
              source: str | None = None) -> dict[str, Any]:
    """Update `ckpt`'s fitted readout with labelled windows X (N, C, F, T), y (N,) prepared like its training data
    (`data_fields`: their meta.json's names, checked against the checkpoint's), and save the result at `save`; returns
    its metrics. Any number of trials, one class only too: the prior keeps the fit defined. `source` names what was
    calibrated in metrics.calibration (default: ckpt)."""
    check_weight(weight)
    save = Path(save)
    if save.resolve() == Path(ckpt).resolve():
        raise UserInputError(f"--save {save} is --ckpt: calibrating would overwrite the model it starts from (the "
                             f"prior of every later calibration); save to another file")
    check_writable(save, "--save")
    model, meta = load_model_from_checkpoint(ckpt, "cpu")
    prior = meta["metrics"].get("readout_prior")
    if prior is None:
        raise UserInputError(f"{ckpt} holds no fitted two-class readout to update: calibrate takes a checkpoint of "
                             f"`train --fit-readout --epochs 0` on two classes, one network (e.g. "
                             f"motor-imagery-cross); fine-tune others with `train --init`")
    config = model.config
    check_prior(prior, config.n_electrodes * config.n_bands * config.readout_frames, str(ckpt))
    if data_fields:  # first: a meta.json of another recipe is named as such, not by the shapes it gives
        check_data_meta(config, data_fields)
    X = check_windows(X, config, single_ok=False)
    y = check_labels(y, len(X), config.n_classes, training=False)
    trained_frames = meta["example_input_shape"][-1]
    if X.shape[-1] != trained_frames:
        raise UserInputError(f"X has windows of T={X.shape[-1]} frames but the readout was fitted on T="
                             f"{trained_frames}: prepare the trials like the model's data (prepare --like its "
                             f"meta.json)")
    mean, scale = prior["mean"].numpy(), prior["scale"].numpy()
    read = with_intercept((last_decision_frames(model, X).flatten(1).double().numpy() - mean) / scale)  # (N, D + 1)
    coef, factor, converged = laplace_update(read, y, prior, weight)
    if not converged:
        raise UserInputError(f"calibrate found no update of {ckpt}'s readout on these trials (the solver did not "
                             f"converge): check that X.npy is prepared like the model's data (prepare --like its "
                             f"meta.json; not in another unit), or give a smaller --weight")
    before = float(np.mean((read @ prior["coef"].numpy() > 0) == (y == 1)))
    after = float(np.mean((read @ coef > 0) == (y == 1)))
    set_readout(model, coef[None, :-1], coef[-1:], mean, scale)
    metrics = {**meta["metrics"], "readout_prior": {**prior, "coef": torch.from_numpy(coef), "factor": factor},
               "calibration": [*meta["metrics"].get("calibration", []),
                               {"ckpt": source or str(ckpt), "trials": len(y), "weight": weight,
                                "accuracy_before": before, "accuracy_after": after}]}
    save_checkpoint(save, model, meta["example_input_shape"], meta["epoch"], metrics)
    echo(f"calibrated on {len(y)} trial{'s' * (len(y) != 1)}, each weighted as {weight:g} training trials; accuracy "
         f"on these calibration trials (not a test) {before:.3f} before, {after:.3f} after; saved to {save}")
    return metrics


def first_trials(X: np.ndarray, y: np.ndarray, trials: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first `trials` windows and labels (`calibrate --trials`; None: all of them)."""
    if trials is None:
        return X, y
    if X.ndim == 0 or y.ndim != 1 or len(X) != len(y):
        raise UserInputError(f"X.npy has shape {X.shape} and y.npy {y.shape}: give one label per trial, (N, C, F, T) "
                             f"and (N,)")
    if trials > len(X):
        raise UserInputError(f"--trials {trials}: X.npy holds {len(X)} trials: give at most {len(X)}, or leave "
                             f"--trials out to use them all")
    return X[:trials], y[:trials]


def check_weight(weight: float) -> None:
    """UserInputError unless weight is a number in (0, MAX_WEIGHT]."""
    if not (math.isfinite(weight) and 0 < weight <= MAX_WEIGHT):
        raise UserInputError(f"--weight must be a number > 0 and at most {MAX_WEIGHT:g} (each new trial counts as "
                             f"that many training trials), got {weight}")
