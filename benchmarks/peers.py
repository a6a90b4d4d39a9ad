"""The field's methods that benchmarks/accuracy.py measures EEGModel against, each a scikit-learn estimator fitted on
the raw trials (N, C, S) in µV of a fold's training side and scored on its test side (the `[bench]` extra):

  * CSP + LDA:   mne.decoding.CSP (log-variance of up to 6 spatial filters, Ledoit-Wolf) + linear discriminant;
  * FBCSP + LDA: the same per 4 Hz band of the set's rhythm band (4 filters each), shrinkage LDA on them all;
  * TS + LR:     pyriemann covariances (Xdawn prototypes for slow potentials) -> tangent space -> logistic regression;
  * EA + TS + LR: the same after Euclidean alignment of each subject's trials (He & Wu 2019; cross-subject rows);
  * MiniRocket:  aeon's MiniRocketClassifier on the raw trials (10,000 kernels, ridge);
  * EEGNet, ShallowFBCSPNet: braindecode's models (EEGNetv4, ShallowFBCSPNet) trained as its trialwise tutorial and
                 MOABB's braindecode pipelines do: AdamW, lr 0.0625 * 0.01, no weight decay, batch 64, cosine
                 annealing, on the raw trials (DEEP_EPOCHS epochs: a budget for 2 cores, see docs/accuracy.md);
  * chance:      the training side's majority class.
CSP, FBCSP and TS see the trials band-passed (zero-phase) to the set's band (PEERS), the others the raw trials;
on the motor-rhythm rows (`_mu`) every method sees the band-passed trials (8-30 Hz: nothing of the eyes' slow
potentials, which reach the FC and C rows), unless `unfiltered` asks for the raw ones.
"""
from __future__ import annotations

from typing import Any

import mne
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier

# The peers' band-pass (Hz; None: the raw trial) and covariance kind: rhythms (power) or slow potentials (Xdawn).
PEERS = {
    "eyes_open_closed": ((1.0, 40.0), "rhythm"),
    "SelfRegulationSCP1": ((None, 2.0), "slow"),
    "FingerMovements": ((None, 4.0), "slow"),
    "KDD_Example": ((1.0, 40.0), "rhythm"),
    "eegmmidb_within": ((8.0, 30.0), "rhythm"),
    "eegmmidb_cross": ((8.0, 30.0), "rhythm"),
    "eegmmidb_within_mu": ((8.0, 30.0), "rhythm"),
    "eegmmidb_cross_mu": ((8.0, 30.0), "rhythm"),
    "eegmmidb_new_subject_mu": ((8.0, 30.0), "rhythm"),
}
FBCSP_STEP = 4.0  # Hz per band of the filter bank
DEEP_EPOCHS = 40
DEEP = ("eegnet", "shallow")


def band_passed(X: np.ndarray, sfreq: float, band: tuple[float | None, float | None]) -> np.ndarray:
    if band == (None, None):
        return X
    return mne.filter.filter_data(X, sfreq, band[0], band[1], method="iir", verbose="error")  # zero-phase


class FilterBankCSP(BaseEstimator, ClassifierMixin):
    """FBCSP + LDA: CSP log-variance features per band of a filter bank, one shrinkage LDA over all of them."""

    def __init__(self, sfreq: float = 160.0, band: tuple[float, float] = (8.0, 30.0), n_components: int = 4):
        self.sfreq, self.band, self.n_components = sfreq, band, n_components

    def bands(self) -> list[tuple[float, float]]:
        edges = np.arange(self.band[0], self.band[1] + 1e-9, FBCSP_STEP)
        return [(lo, min(lo + FBCSP_STEP, self.band[1])) for lo in edges[:-1]]

    def features(self, X: np.ndarray) -> np.ndarray:
        return np.concatenate([csp.transform(band_passed(X, self.sfreq, band))
                               for band, csp in zip(self.bands(), self.csps_)], axis=1)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "FilterBankCSP":
        from mne.decoding import CSP
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        k = min(self.n_components, X.shape[1])
        self.csps_, features = [], []
        for band in self.bands():  # each band filtered once, for its CSP and for the LDA's features
            passed = band_passed(X, self.sfreq, band)
            self.csps_.append(CSP(n_components=k, reg="ledoit_wolf", log=True).fit(passed, y))
            features.append(self.csps_[-1].transform(passed))
        self.lda_ = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(np.concatenate(features, axis=1),
                                                                                    y)
        self.classes_ = self.lda_.classes_
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.lda_.predict(self.features(X))


def euclidean_aligned(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each group's trials (N, C, S) re-centred by R^-1/2, R the mean of its trials' covariances (He & Wu 2019)."""
    from scipy.linalg import fractional_matrix_power

    out = np.empty_like(X)
    for g in np.unique(groups):
        mask = groups == g
        R = np.mean([x @ x.T / x.shape[1] for x in X[mask]], axis=0)
        out[mask] = np.real(fractional_matrix_power(R, -0.5)) @ X[mask]
    return out


def braindecode_importable() -> None:
    """braindecode 0.8.1 (the last release without torchaudio, whose wheels do not load beside torch 2.13's CPU
    build) reads `moabb.datasets.BNCI2014001` when imported; MOABB 1.x (the test extra's) calls it BNCI2014_001.
    Where MOABB is installed, the old name is given the same dataset class before braindecode is imported."""
    try:
        import moabb.datasets as datasets
    except ImportError:
        return
    if not hasattr(datasets, "BNCI2014001"):
        datasets.BNCI2014001 = datasets.BNCI2014_001


def deep_classifier(method: str, n_channels: int, n_times: int, n_classes: int, seed: int = 0) -> Any:
    """braindecode's EEGNetv4 or ShallowFBCSPNet in its EEGClassifier (skorch), the tutorial's training settings."""
    import torch

    braindecode_importable()
    from braindecode import EEGClassifier
    from braindecode.models import EEGNetv4, ShallowFBCSPNet
    from skorch.callbacks import LRScheduler

    torch.manual_seed(seed)
    module, extra = (EEGNetv4, {}) if method == "eegnet" else \
        (ShallowFBCSPNet, {"module__final_conv_length": "auto", "module__add_log_softmax": False})
    return EEGClassifier(module, module__n_chans=n_channels, module__n_outputs=n_classes, module__n_times=n_times,
                         **extra, optimizer=torch.optim.AdamW, optimizer__lr=0.0625 * 0.01,
                         optimizer__weight_decay=0.0, batch_size=64, max_epochs=DEEP_EPOCHS, train_split=None,
                         iterator_train__shuffle=True,
                         callbacks=[("lr_scheduler", LRScheduler("CosineAnnealingLR", T_max=DEEP_EPOCHS - 1))],
                         device="cpu", verbose=0)


def peer(method: str, n_channels: int, kind: str, sfreq: float, band: tuple) -> Any:
    """A fresh scikit-learn pipeline of one of the field's (non-deep) methods."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if method == "csp":
        from mne.decoding import CSP
        return make_pipeline(CSP(n_components=min(6, n_channels), reg="ledoit_wolf", log=True),
                             LinearDiscriminantAnalysis())
    if method == "fbcsp":
        return FilterBankCSP(sfreq, band)
    if method in ("ts", "ea_ts"):
        from pyriemann.estimation import Covariances, XdawnCovariances
        from pyriemann.tangentspace import TangentSpace
        covariances = XdawnCovariances(nfilter=2, estimator="oas") if kind == "slow" else Covariances("oas")
        return make_pipeline(covariances, TangentSpace(), LogisticRegression(max_iter=1000))
    if method == "minirocket":
        from aeon.classification.convolution_based import MiniRocketClassifier
        return MiniRocketClassifier(random_state=0, n_jobs=-1)  # the same kernels and result on every core count
    return DummyClassifier(strategy="most_frequent")


def applies(method: str, name: str, groups: bool) -> bool:
    """Whether a method is measured on a set: FBCSP needs a rhythm band, EA subjects to align (cross rows)."""
    band, kind = PEERS[name]
    if method == "fbcsp":
        return kind == "rhythm"
    if method == "ea_ts":
        return groups and kind == "rhythm"
    return True


def peer_accuracy(method: str, name: str, sfreq: float, X_train: np.ndarray, y_train: np.ndarray,
                  X_test: np.ndarray, y_test: np.ndarray, g_train: np.ndarray | None = None,
                  g_test: np.ndarray | None = None, unfiltered: bool = False) -> float:
    """Accuracy of one method fitted on the training trials (N, C, S) µV, scored on the test trials; g_*: subjects
    (a subject on both sides, a new one's calibration trials, is aligned by all its trials)."""
    band, kind = PEERS[name]
    if method in ("csp", "fbcsp", "ts", "ea_ts") or (name.endswith("_mu") and not unfiltered):
        X_train, X_test = band_passed(X_train, sfreq, band), band_passed(X_test, sfreq, band)
    if method == "ea_ts":
        aligned = euclidean_aligned(np.concatenate([X_train, X_test]), np.concatenate([g_train, g_test]))
        X_train, X_test = aligned[:len(X_train)], aligned[len(X_train):]
    if method in DEEP:
        model = deep_classifier(method, X_train.shape[1], X_train.shape[2], len(np.unique(y_train)))
        model.fit(X_train.astype(np.float32), y_train.astype(np.int64))
        return float((model.predict(X_test.astype(np.float32)) == y_test).mean())
    model = peer(method, X_train.shape[1], kind, sfreq, band)
    model.fit(X_train.astype(np.float64), y_train)
    return float((model.predict(X_test.astype(np.float64)) == y_test).mean())
