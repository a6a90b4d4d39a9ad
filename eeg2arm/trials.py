"""Labelled trials cut from a recording and turned into features by a recipe.

Continuous recordings are cut around their annotations; epoched files give their stored epochs. The recipe
(`eeg2arm.recipe`: reference, causal filters, features) runs over a continuous recording from its first sample
before trials are cut, over an epoch from its own first sample. `align` is the recording's subject alignment
(R^-1/2, eeg2arm.spatial) when the recipe aligns; `recording_covariance` is what it is estimated from.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np

from .errors import UserInputError
from .recipe import CausalChain, Recipe
from .recordings import Recording
from .spatial import Alignment, SignalMoments

log = logging.getLogger("eeg2arm")

BLOCK_S = 60.0  # a continuous recording goes through the recipe's filters in pieces of this length


@dataclass(frozen=True)
class Span:
    """Where each trial lies: [tmin, tmax) s around each onset, or (tmax None) consecutive windows of `window` s
    cut from each annotation."""

    tmin: float | None
    tmax: float | None
    window: float

    def samples(self, sfreq: float) -> tuple[float, int]:
        """(tmin in s, samples per trial) cut around each onset of a continuous recording."""
        if self.tmax is None:
            return 0.0, round(self.window * sfreq)
        return self.tmin, round((self.tmax - self.tmin) * sfreq)


@dataclass(frozen=True)
class Trials:
    """The trials cut from one file: features (n, C, F, T), class indices (n,), onsets (n,) in s from the start."""

    features: np.ndarray
    labels: np.ndarray
    onsets: np.ndarray

    @classmethod
    def empty(cls, recipe: Recipe) -> "Trials":
        return cls(np.empty((0, len(recipe.model_channels), recipe.n_features, 0)), np.empty(0, np.int64),
                   np.empty(0))


Signals = dict[str, np.ndarray]  # the recipe's signals of the trials {kind: (N, ..., n)} (eeg2arm.recipe.CausalChain)
Cut = tuple[Signals | None, np.ndarray, np.ndarray]  # (signals, or None without trials; labels (N,); onsets (N,) s)


def event_names(inst: Recording) -> set[str]:
    """Class-candidate names in a file: its event_id names (epochs) or annotation descriptions (continuous)."""
    if isinstance(inst, mne.BaseEpochs):
        return set(inst.event_id)
    return set(inst.annotations.description)


def class_mapping(events: tuple[tuple[str, str], ...], found: set[str]) -> tuple[list[str], dict[str, int]]:
    """(class names in label order, {event name: class index}); the order of --event defines the label order."""
    if not events:  # every name except MNE's BAD/EDGE markers, sorted
        events = tuple((n, n) for n in sorted(found) if not n.lower().startswith(("bad", "edge")))
    names = [name for name, _ in events]
    if len(set(names)) != len(names):
        raise UserInputError(f"--event names repeat: {names}; give each annotation once")
    missing = [n for n in names if n not in found]
    if len(missing) == len(names):
        raise UserInputError(f"no matching events: --event {', '.join(names) or '(every name)'} matches no annotation "
                             f"or event in the files (found: {', '.join(sorted(found)) or 'none'}): give --event with "
                             f"the files' names (NAME=CLASS maps one onto a class)")
    if missing:  # e.g. a held-out file of one class, prepared with the training set's full label order
        log.warning("--event %s matches no annotation or event in the files", ", ".join(missing))
    classes = list(dict.fromkeys(cls for _, cls in events))
    return classes, {name: classes.index(cls) for name, cls in events}


def trial_samples(path: Path, inst: Recording, span: Span) -> int:
    """Samples per trial this file will give; check an event-locked span lies inside stored epochs."""
    sfreq = inst.info["sfreq"]
    if not isinstance(inst, mne.BaseEpochs):
        return span.samples(sfreq)[1]
    if span.tmax is None:
        return len(inst.times)
    tmin, n = span.samples(sfreq)
    if tmin < inst.tmin - 0.5 / sfreq or tmin + (n - 1) / sfreq > inst.tmax + 0.5 / sfreq:
        raise UserInputError(f"--tmin/--tmax [{span.tmin:g}, {span.tmax:g}) s lies outside the epochs stored in "
                             f"{path} ([{inst.tmin:g}, {inst.tmax + 1 / sfreq:g}) s): choose a span inside them")
    return n


def epochs_signals(path: Path, epochs: mne.BaseEpochs, event_class: dict[str, int], recipe: Recipe, span: Span,
                   align: Alignment | None = None) -> Cut:
    """The stored epochs whose event is mapped to a class, in file order, each through the recipe from its own first
    sample (then cropped to --tmin/--tmax if given)."""
    sfreq = epochs.info["sfreq"]
    code_class = {code: event_class[name] for name, code in epochs.event_id.items() if name in event_class}
    keep = np.flatnonzero(np.isin(epochs.events[:, 2], list(code_class)))
    if not keep.size:
        return None, np.empty(0, np.int64), np.empty(0)
    epochs = epochs[keep]
    signals = CausalChain(recipe, align).push(epochs.get_data(picks=list(recipe.input_channels), units="uV",
                                                       verbose="error"))  # {kind: (n, C, S)}
    if span.tmax is not None:
        tmin, n = span.samples(sfreq)
        start = round((tmin - epochs.tmin) * sfreq)
        signals = {kind: x[..., start:start + n] for kind, x in signals.items()}
    labels = np.array([code_class[c] for c in epochs.events[:, 2]], dtype=np.int64)
    return signals, labels, epochs.events[:, 0] / sfreq


def continuous_signals(raw: mne.io.BaseRaw, recipe: Recipe, starts: np.ndarray, n: int,
                       align: Alignment | None = None) -> Signals:
    """The recipe's signals {kind: (N, ..., n)} of the trials [start, start + n) (samples from the recording's first),
    filtered causally from the recording's first sample. The recording goes through in BLOCK_S pieces, so memory
    holds the trials and one piece."""
    chain, block = CausalChain(recipe, align), round(BLOCK_S * raw.info["sfreq"])
    out: dict[str, np.ndarray] = {}
    for b0 in range(0, int(starts.max()) + n, block):
        b1 = min(b0 + block, int(starts.max()) + n)
        piece = chain.push(raw.get_data(picks=list(recipe.input_channels), start=b0, stop=b1, units="uV",
                                        verbose="error"))  # {kind: (..., b1 - b0)}
        for kind, x in piece.items():
            trials = out.setdefault(kind, np.empty((len(starts), *x.shape[:-1], n)))
            for i, t0 in enumerate(starts):  # the part of trial i inside this piece
                lo, hi = max(t0, b0), min(t0 + n, b1)
                if lo < hi:
                    trials[i, ..., lo - t0:hi - t0] = x[..., lo - b0:hi - b0]
    return out


def raw_signals(path: Path, raw: mne.io.BaseRaw, event_class: dict[str, int], recipe: Recipe, span: Span,
                align: Alignment | None = None, quiet: bool = False) -> Cut:
    """Trials from annotations: [tmin, tmax) around each onset, or each annotation cut into `window` pieces."""
    sfreq = raw.info["sfreq"]
    codes = {name: i + 1 for i, name in enumerate(event_class)}
    # events_from_annotations places onsets right for any first_samp and meas_date. Its chunk_duration option does
    # not (MNE 1.13 adds first_samp twice when the annotations have no orig_time), so windows are cut here.
    events, _ = mne.events_from_annotations(raw, event_id=codes, use_rounding=True, verbose="error")
    tmin, n = span.samples(sfreq)
    if span.tmax is None:  # consecutive non-overlapping windows from each onset; an incomplete last one is dropped
        ann = raw.annotations
        pieces = np.floor(ann.duration[np.isin(ann.description, list(codes))] / span.window + 1e-9).astype(int)
        assert len(pieces) == len(events), "events_from_annotations keeps one event per selected annotation"
        events = np.array([[start + k * n, 0, code] for (start, _, code), p in zip(events, pieces)
                           for k in range(p)], dtype=np.int64).reshape(-1, 3)
    present = {name: code for name, code in codes.items() if code in events[:, 2]}
    none = None, np.empty(0, np.int64), np.empty(0)
    if not present:
        return none
    try:  # MNE decides which trials lie inside the data and off BAD annotations; tmax includes its sample
        epochs = mne.Epochs(raw, events, present, tmin=tmin, tmax=tmin + (n - 1) / sfreq, baseline=None,
                            picks=list(recipe.input_channels), preload=False, verbose="error").drop_bad(verbose="error")
    except ValueError as e:
        raise UserInputError(f"cannot cut trials from {path} ({str(e).splitlines()[0]}): check the annotations "
                             f"and --tmin/--tmax/--window") from None
    if len(epochs) < len(events) and not quiet:
        log.warning("%s: %d of %d trials dropped (outside the data or overlapping BAD annotations)", path,
                    len(events) - len(epochs), len(events))
    if not len(epochs):
        return none
    starts = epochs.events[:, 0] - raw.first_samp + round(tmin * sfreq)  # samples from the recording's first
    code_class = {codes[name]: event_class[name] for name in present}
    labels = np.array([code_class[c] for c in epochs.events[:, 2]], dtype=np.int64)
    onsets = (epochs.events[:, 0] - raw.first_samp) / sfreq  # s from the first sample of the recording
    return continuous_signals(raw, recipe, starts, n, align), labels, onsets


def trial_signals(path: Path, inst: Recording, event_class: dict[str, int], recipe: Recipe, span: Span,
                  align: Alignment | None = None, quiet: bool = False) -> Cut:
    """The recipe's signals of the labelled trials of one file: its stored epochs, or trials cut from its
    annotations (what CSP filters are fitted on; `quiet`: no warning of dropped trials, which the features' pass
    gives)."""
    if isinstance(inst, mne.BaseEpochs):
        return epochs_signals(path, inst, event_class, recipe, span, align)
    return raw_signals(path, inst, event_class, recipe, span, align, quiet)


def cut_trials(path: Path, inst: Recording, event_class: dict[str, int], recipe: Recipe, span: Span,
               align: Alignment | None = None) -> Trials:
    """The labelled trials of one file as the recipe's features."""
    signals, labels, onsets = trial_signals(path, inst, event_class, recipe, span, align)
    return Trials.empty(recipe) if signals is None else Trials(recipe.frames(signals), labels, onsets)


def recording_moments(inst: Recording, recipe: Recipe) -> SignalMoments:
    """The mean and spatial covariance of a whole file's signal after the recipe's spatial map and band-pass (every
    epoch from its own first sample): what an alignment is estimated from."""
    chain, picks = CausalChain(recipe), list(recipe.input_channels)
    covariance = SignalMoments(len(recipe.channels))
    if isinstance(inst, mne.BaseEpochs):
        covariance.add(chain.front(inst.get_data(picks=picks, units="uV", verbose="error")))  # (N, C, n)
        return covariance
    block = round(BLOCK_S * inst.info["sfreq"])
    for b0 in range(0, inst.n_times, block):
        covariance.add(chain.front(inst.get_data(picks=picks, start=b0, stop=min(b0 + block, inst.n_times),
                                                 units="uV", verbose="error")))  # (C, <= block)
    return covariance
