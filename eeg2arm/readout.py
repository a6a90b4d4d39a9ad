"""The linear readout fitted in closed form: logistic regression (scikit-learn) on standardized, flattened windows,
its L2 strength chosen by accuracy on 5 contiguous inner folds. benchmarks/accuracy.py scores it as "its features
+ LR"; `train --fit-readout` puts the same fit into EEGModel's readout (config.readout_frames), where it stays fixed
while the network learns what it misses.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .errors import UserInputError
from .model import EEGModel


def linear_readout(X: np.ndarray, y: np.ndarray) -> Pipeline:
    """Logistic regression fitted on standardized features X (N, D), its C chosen by accuracy on 5 contiguous inner
    folds (in the given order). scikit-learn 1.9 announces coming changes of LogisticRegressionCV's defaults on
    every fit; the settings used here are given explicitly, so those notices are silenced."""
    readout = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-4, 2, 7), cv=KFold(5),
                                                                   scoring="accuracy", max_iter=5000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return readout.fit(X, y)


@torch.no_grad()
def fit_readout(model: EEGModel, X: np.ndarray, y: np.ndarray) -> Pipeline:
    """Set model.readout to linear_readout's fit on the standardized frames that the last decision's readout reads
    of windows X (N, C, F, T) (the last readout_frames frames, or those up to the last pooled frame), y (N,), and
    silence the network's head: the model's logits are then the regression's (its
    probabilities the same). Returns the fitted pipeline."""
    if len(np.unique(y)) < 2 or len(y) < 10:
        raise UserInputError(f"--fit-readout needs 10 or more training trials of at least 2 classes, got {len(y)} "
                             f"of {len(np.unique(y))}: give more trials or leave --fit-readout out")
    n, pool = model.config.readout_frames, model.config.cnn_time_pool
    was_training = model.training
    model.eval()
    x = model.standardized_input(torch.from_numpy(X).to(model.input_mean.device))  # (N, C, F, T)
    model.train(was_training)
    end = x.shape[-1] // pool * pool  # the last decision reads the n frames before this one (zeros before the first)
    x = F.pad(x, (n - 1, 0))[..., end - 1:end - 1 + n]  # (N, C, F, n)
    pipeline = linear_readout(x.flatten(1).cpu().double().numpy(), y)  # features in (C, F, n) order, as the conv
    scaler, regression = pipeline[0], pipeline[-1]
    weight = regression.coef_ / scaler.scale_  # (K', C*F*n): on the model's standardized frames
    bias = regression.intercept_ - weight @ scaler.mean_  # (K',)
    if len(regression.classes_) == 2:  # one logit d for class 1: logits (-d/2, d/2) give the same softmax
        weight, bias = np.concatenate([-weight, weight]) / 2, np.concatenate([-bias, bias]) / 2
    logits = np.zeros((model.config.n_classes, weight.shape[1]))
    logits_bias = np.zeros(model.config.n_classes)
    logits[regression.classes_], logits_bias[regression.classes_] = weight, bias  # classes absent from y stay at 0
    model.readout.weight.copy_(torch.from_numpy(logits).reshape(model.readout.weight.shape))
    model.readout.bias.copy_(torch.from_numpy(logits_bias))
    model.silence_network()
    return pipeline
