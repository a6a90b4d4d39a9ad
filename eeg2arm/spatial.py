"""Spatial maps learned from the data, as parts of a recipe (eeg2arm.recipe).

* **Filter-bank CSP** (`--spatial csp:K`): for each band of the recipe, K spatial filters fitted with MNE's
  `mne.decoding.CSP` (Ledoit-Wolf regularized covariances, components from both ends of the spectrum) on the
  training trials' band-passed signal and labels; beyond two classes, K filters per class against the rest. The
  model then sees, per frame, the log power of each component in its own band: X (N, C = components, F = bands, T).
* **Their covariance in the tangent space** (`--spatial csp-tangent:K`): the same filters, each band's whitened by
  P^-1/2 (P the mean covariance of its components over the training trials, so that the reference point is the
  identity), and per frame the upper triangle of log(S), S the components' covariance over the frame (the mean of
  x x^T, as the log power above is the mean of x²), off-diagonal entries times sqrt(2) so that the vector's norm is the
  Riemannian distance to the reference: K'(K'+1)/2 numbers per band and frame (K' = K, or K per class beyond two
  classes), X (N, C = pairs, F = bands, T). The
  diagonal carries each component's power, the rest how the components co-vary, which the log powers drop and
  tangent-space methods (TS + LR) read.
* **Alignment** of each recording (a session of a subject) from its own signal, no labels needed, so a new subject
  is aligned from its own signal and a live stream from its first seconds: `--align euclidean` (He & Wu 2019) re-centres the signal by R^-1/2, R the spatial covariance
  of its own band-passed signal, so that every subject's covariance becomes the identity; `--align mean` subtracts
  each channel's mean, the first moment: electrode offsets and the slow drift between sessions, which the absolute
  level of slow potentials carries (docs/accuracy.md, FingerMovements).

All are instantaneous affine maps, so they run inside the recipe's causal chain online exactly as offline.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import UserInputError
from .features import LOG_FLOOR

SPATIAL_METHODS = ("csp", "csp-tangent")  # log power of each component; tangent vector of their covariance
TANGENT = "csp-tangent"
ALIGN_METHODS = ("euclidean", "mean")
SHRINK = 1e-3  # R + SHRINK * mean eigenvalue: keeps R^-1/2 finite for a rank-deficient signal (a common average)


def parse_spatial(text: str) -> str:
    """'csp:4' -> 'csp:4' (validated): the method and K components per band (and per class beyond two)."""
    method, _, k = text.strip().partition(":")
    if method not in SPATIAL_METHODS or not k.isdigit() or int(k) < 1:
        raise UserInputError(f"--spatial {text!r} must be csp:K or csp-tangent:K with K >= 1 spatial filters per band, "
                             f"e.g. csp:4")
    return f"{method}:{int(k)}"


def spatial_method(spatial: str) -> str:
    """'csp' of 'csp:K', 'csp-tangent' of 'csp-tangent:K'."""
    return spatial.partition(":")[0]


def components_per_band(spatial: str) -> int:
    """K of 'csp:K' or 'csp-tangent:K'."""
    return int(spatial.partition(":")[2])


def parse_align(text: str) -> str:
    if text not in ALIGN_METHODS:
        raise UserInputError(f"--align {text!r} must be one of {', '.join(ALIGN_METHODS)}")
    return text


def is_tangent(spatial: str | None) -> bool:
    """Whether a recipe's `spatial` reads the tangent vectors of its components' covariance (csp-tangent:K)."""
    return spatial is not None and spatial_method(spatial) == TANGENT


def component_names(n: int, tangent: bool = False) -> tuple[str, ...]:
    """The model's C 'electrodes' of a CSP recipe of n components per band: csp1, csp2, ... (the same filters' index
    in every band), or for their tangent vectors the upper triangle's pairs in row order: csp1, csp1*csp2, ..., csp2,
    csp2*csp3, ... (a diagonal entry keeps its component's name)."""
    names = [f"csp{i + 1}" for i in range(n)]
    if not tangent:
        return tuple(names)
    return tuple(a if i == j else f"{a}*{names[j]}" for i, a in enumerate(names) for j in range(i, n))


def whitened(filters: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Each band's filters (F, K, C) times P^-1/2, P the mean covariance of its components over the trials of bank
    (N, F, C, n): their Euclidean alignment (SignalMoments, inverse_sqrt's shrinkage), so that the components have
    about the identity as their mean covariance, the tangent space's reference."""
    out = []
    for f, W in enumerate(filters):
        moments = SignalMoments(len(W))
        for trial in bank[:, f]:  # (C, n), one at a time: the bank of all training trials is large
            moments.add(W @ trial.astype(np.float64))  # (K, n)
        out.append(moments.alignment("euclidean", f"the training trials' CSP components in band {f + 1}").matrix @ W)
    return np.stack(out)


def tangent_vectors(frames: np.ndarray) -> np.ndarray:
    """(..., K, T, w) frames of whitened components -> float64 (..., K(K+1)/2, T): the upper triangle of log(S) in
    row order, off-diagonals times sqrt(2), S the mean of x x^T over each frame. A frame holding a non-finite sample
    (an amplifier dropout) gives NaN, as band power does."""
    S = np.einsum("...ktw,...ltw->...tkl", frames, frames) / frames.shape[-1]  # (..., T, K, K)
    bad = ~np.isfinite(S).all(axis=(-2, -1))  # (..., T)
    S[bad] = np.eye(S.shape[-1])
    values, vectors = np.linalg.eigh(S)
    log_S = (vectors * np.log(np.clip(values, LOG_FLOOR, None))[..., None, :]) @ np.swapaxes(vectors, -1, -2)
    rows, cols = np.triu_indices(S.shape[-1])
    vector = log_S[..., rows, cols] * np.where(rows == cols, 1.0, np.sqrt(2.0))  # (..., T, P)
    vector[bad] = np.nan
    return np.moveaxis(vector, -1, -2)


def fit_csp(bank: np.ndarray, y: np.ndarray, spatial: str) -> np.ndarray:
    """Filter-bank CSP of `spatial` ("csp:k" or "csp-tangent:k"): bank (N, F, C, n) band-passed trials, y (N,)
    labels -> filters (F, K', C), K' = k for two classes, k per class (one against the rest) beyond."""
    method, k = spatial_method(spatial), components_per_band(spatial)
    from mne.decoding import CSP
    from mne.utils import use_log_level

    classes = np.unique(y)
    if len(classes) < 2:
        raise UserInputError("--spatial csp learns its filters from labelled trials of at least two classes, but the "
                             "training trials hold one class: give --event for two or more classes, or prepare "
                             "--like a recipe fitted before")
    if k > bank.shape[2]:
        raise UserInputError(f"--spatial {spatial} asks for more filters than the {bank.shape[2]} channels: use at "
                             f"most {method}:{bank.shape[2]}")
    targets = [y] if len(classes) == 2 else [(y == c).astype(int) for c in classes]  # one against the rest
    filters = []
    for f in range(bank.shape[1]):
        X = bank[:, f].astype(np.float64)  # (N, C, n)
        with use_log_level("error"):
            filters.append(np.concatenate([
                CSP(n_components=k, reg="ledoit_wolf", component_order="alternate").fit(X, target).filters_[:k]
                for target in targets]))  # (K', C)
    return np.stack(filters)


@dataclass(frozen=True)
class Alignment:
    """One subject's re-centring, applied after the recipe's spatial map and band-pass: x -> matrix @ x - offset."""

    matrix: np.ndarray | None = None  # (C, C): R^-1/2 (euclidean)
    offset: np.ndarray | None = None  # (C,): the channels' means (mean)

    def to_json(self) -> Any:
        return self.matrix.tolist() if self.matrix is not None else self.offset.tolist()

    @classmethod
    def from_json(cls, method: str, value: Any, n_channels: int) -> "Alignment":
        """The stored form of `method`'s alignment of n_channels channels; ValueError when it does not fit."""
        array = np.asarray(value, dtype=float)
        shape = (n_channels, n_channels) if method == "euclidean" else (n_channels,)
        if method not in ALIGN_METHODS or array.shape != shape or not np.isfinite(array).all():
            raise ValueError(f"not a {method} alignment of {n_channels} channels")
        return cls(matrix=array) if method == "euclidean" else cls(offset=array)


class SignalMoments:
    """The mean and spatial covariance of a signal that arrives in pieces (..., C, n): sums of x and x x^T over the
    finite samples and their count, so that the pieces of a stream or the epochs of a recording add up to one
    estimate."""

    def __init__(self, n_channels: int):
        self.sum, self.total, self.count = np.zeros(n_channels), np.zeros((n_channels, n_channels)), 0

    def add(self, x: np.ndarray) -> None:
        x = np.moveaxis(x, -2, 0).reshape(x.shape[-2], -1)  # (C, samples)
        x = x[:, np.isfinite(x).all(axis=0)]  # an amplifier dropout (NaN) adds nothing
        self.sum += x.sum(axis=1)
        self.total += x @ x.T
        self.count += x.shape[1]

    def alignment(self, method: str, what: str) -> Alignment:
        """The subject's re-centring by `method` (ALIGN_METHODS) from these moments."""
        if self.count < len(self.sum):
            raise UserInputError(f"{what} has {self.count} usable samples, fewer than its {len(self.sum)} channels: "
                                 f"the alignment needs a longer signal")
        if method == "mean":
            return Alignment(offset=self.sum / self.count)
        if not np.trace(self.total) > 0:
            raise UserInputError(f"{what} is flat (zero everywhere after the recipe's filters): nothing to align")
        return Alignment(matrix=inverse_sqrt(self.total / self.count))


def inverse_sqrt(R: np.ndarray) -> np.ndarray:
    """(R + SHRINK * mean eigenvalue * I)^-1/2 of a symmetric positive semi-definite R."""
    values, vectors = np.linalg.eigh(R)
    values = np.clip(values, 0.0, None) + SHRINK * values.mean()
    return (vectors / np.sqrt(values)) @ vectors.T
