"""Bad electrodes found and replaced in a raw stream, so that one electrode falling off does not stop the arm.

Per channel, over its last WINDOW_S of samples, judged every HOP_S of signal counted from the stream's first
sample (so the verdicts do not depend on how the stream is chunked), a channel is bad when it is

    NaN      it held a non-finite sample (an amplifier dropout),
    flat     its standard deviation is below FLAT_UV (disconnected, or zeroed by the app),
    railing  at least RAIL_SHARE of its samples sit at its extreme value (the amplifier's input stuck at a limit),
    noisy    its standard deviation is above NOISY_UV (an open input picking up mains, a loose lead),

and good again once a whole window passes none of these. A bad channel is replaced, from the first sample of the
verdict on, by MNE's spherical-spline interpolation from the good ones (`interpolate_bads`, on the recipe's
montage, or MNE's colin27_1005 (the standard 10-05 positions) when every channel's name is in it; the map is found once per set of bad channels
by interpolating an identity signal); without positions, by the mean of the good channels. A sample that is not
finite is replaced at once, before any verdict, the same way: no NaN ever reaches the recipe's filters.

A recipe with learned spatial filters (CSP) weighs every channel it reads, so a replaced channel changes what each
filter sees: with C3 or C4 dead, only 46-70 % of a motor decoder's frames agree with a clean replay
(docs/amplifier.md). `filter_shares` says how much of the filters' weight falls on each channel, for the warning.
"""
from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import mne
import numpy as np

from ..errors import UserInputError
from ..recipe import CausalChain, Recipe, montage_names, standard_montage
from ..spatial import Alignment

WINDOW_S = 1.0
HOP_S = 0.25
FLAT_UV = 0.1
NOISY_UV = 1000.0
RAIL_SHARE = 0.1
STANDARD = "colin27_1005"  # MNE's standard 10-05 positions (standard_1005 before MNE 1.13)


def verdicts(window: np.ndarray) -> dict[int, str]:
    """{channel index: why it is bad} for a window (C, n) of samples in µV."""
    bad: dict[int, str] = {}
    finite = np.isfinite(window).all(axis=1)
    for c in np.flatnonzero(~finite):
        bad[int(c)] = "NaN"
    x = window[finite]
    sd = x.std(axis=1)
    at_limit = np.maximum((x == x.max(axis=1, keepdims=True)).sum(axis=1),
                          (x == x.min(axis=1, keepdims=True)).sum(axis=1))  # samples at the extreme value
    for c, s, limit in zip(np.flatnonzero(finite), sd, at_limit):
        if s < FLAT_UV:
            bad[int(c)] = "flat"
        elif limit >= RAIL_SHARE * x.shape[1]:
            bad[int(c)] = "railing"
        elif s > NOISY_UV:
            bad[int(c)] = "noisy"
    return bad


@functools.lru_cache(maxsize=64)
def repair_matrix(names: tuple[str, ...], bad: frozenset[int], montage: str | None) -> np.ndarray:
    """(C, C) map from the raw samples (bad ones zeroed) to repaired ones: identity on the good channels, the
    interpolation (or the good channels' mean) on the bad ones."""
    n = len(names)
    good = [c for c in range(n) if c not in bad]
    if not good:
        raise UserInputError("every channel of the stream is bad at once: check the amplifier and its electrodes")
    if montage is None:
        matrix = np.eye(n)
        matrix[sorted(bad)] = 0.0
        matrix[np.ix_(sorted(bad), good)] = 1.0 / len(good)
        return matrix
    rename = montage_names(list(names), montage)
    eye = mne.io.RawArray(np.eye(n), mne.create_info([rename[c] for c in names], 100.0, "eeg"), verbose="error")
    eye.set_montage(standard_montage(montage), match_case=False, verbose="error")
    eye.info["bads"] = [rename[names[c]] for c in sorted(bad)]
    eye.interpolate_bads(reset_bads=True, verbose="error")
    return eye.get_data()  # column j: what a unit sample on channel j becomes


def filter_shares(recipe: Recipe, align: Alignment | None) -> dict[str, float] | None:
    """{input channel: its share of a learned-filter recipe's weight}; None for a recipe without learned filters.

    Each band's component is a filter on the raw input (the recipe's reference, the subject's alignment, then the
    CSP filter); a channel's share is the fraction of the filter's squared weights on it, averaged over the
    components. The shares sum to 1; a heuristic, fair where the channels carry signals of like size (µV EEG)."""
    if recipe.csp_filters is None:
        return None
    front = CausalChain(recipe, align).matrix  # (C, C_in): reference then alignment; None: the channels as they are
    weights = np.asarray(recipe.csp_filters)  # (F, K, C)
    squared = (weights if front is None else weights @ front) ** 2  # (F, K, C_in)
    shares = (squared / squared.sum(axis=-1, keepdims=True)).mean(axis=(0, 1))  # (C_in,)
    return dict(zip(recipe.input_channels, shares.tolist()))


def filter_warning(shares: dict[str, float], bad: dict[str, str]) -> str:
    """The line printed when channels a learned-filter recipe reads go bad."""
    share = sum(shares[name] for name in bad)
    return (f"warning: {', '.join(bad)} carry {share:.0%} of the weight of the recipe's learned spatial filters "
            f"({len(bad) / len(shares):.0%} if spread evenly); replaced, they change what every filter sees, so the "
            f"decisions may differ from this model's on a clean signal: fix the electrode (docs/amplifier.md)")


def positions_for(names: tuple[str, ...], montage: str | None) -> str | None:
    """The montage whose positions the repair uses: the recipe's, else colin27_1005 if it names every channel."""
    for candidate in (montage, STANDARD):
        if candidate is None:
            continue
        try:
            montage_names(list(names), candidate)
        except UserInputError:
            continue
        return candidate
    return None


@dataclass
class BadTime:
    """How long each channel was bad, and why (the summary)."""

    samples: Counter = field(default_factory=Counter)  # channel name -> samples spent bad
    reasons: dict[str, set[str]] = field(default_factory=dict)

    def line(self, sfreq: float) -> str:
        if not self.samples:
            return "bad channels: none"
        parts = [f"{name} {n / sfreq:.1f} s ({', '.join(sorted(self.reasons[name]))})"
                 for name, n in self.samples.most_common()]
        return "bad channels: " + ", ".join(parts)


class ChannelWatch:
    """The verdicts over a raw stream (C, n) in µV as it comes (module docstring): `bad` is the current {channel
    name: why}; `changes` lists (sample index from the stream's start, bad) at every change; `time` sums them up."""

    def __init__(self, names: tuple[str, ...], sfreq: float):
        self.names = tuple(names)
        self.window, self.hop = round(WINDOW_S * sfreq), round(HOP_S * sfreq)
        self.recent = np.zeros((len(names), 0))  # the last `window` samples as they came (NaN kept)
        self.seen = 0  # samples since the stream's first
        self.bad: dict[str, str] = {}
        self.changes: list[tuple[int, dict[str, str]]] = [(0, {})]
        self.time = BadTime()

    def segments(self, samples: np.ndarray) -> Iterator[tuple[np.ndarray, dict[str, str]]]:
        """The samples (C, n) in stretches, each with the verdict in force over it; verdicts fall between them."""
        start = 0
        while start < samples.shape[1]:
            part = samples[:, start:start + self.hop - self.seen % self.hop]
            yield part, self.bad
            self.recent = np.concatenate([self.recent, part], axis=1)[:, -self.window:]
            self.seen += part.shape[1]
            start += part.shape[1]
            for name in self.bad:
                self.time.samples[name] += part.shape[1]
            if self.seen % self.hop == 0 and self.recent.shape[1] == self.window:
                self.judge()

    def judge(self) -> None:
        bad = {self.names[c]: why for c, why in sorted(verdicts(self.recent).items())}
        if bad != self.bad:
            self.bad = bad
            self.changes.append((self.seen, dict(bad)))
        for name, why in bad.items():
            self.time.reasons.setdefault(name, set()).add(why)

    def bad_at(self, sample: int) -> dict[str, str]:
        """The verdict in force at a sample index (from the stream's start)."""
        return next(bad for at, bad in reversed(self.changes) if at <= sample)

    def reset(self) -> None:
        """After a gap: the window starts again (the verdicts stand until the next one)."""
        self.recent = self.recent[:, :0]


class ElectrodeRepair(ChannelWatch):
    """Raw samples (C, n) in µV in, the same with bad channels replaced out (module docstring)."""

    def __init__(self, names: tuple[str, ...], sfreq: float, montage: str | None = None):
        super().__init__(names, sfreq)
        self.recipe_montage = montage

    @functools.cached_property
    def montage(self) -> str | None:
        """Looked up at the first repair: a clean stream never needs positions."""
        return positions_for(self.names, self.recipe_montage)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """samples (C, n) µV -> repaired (C, n): every sample finite, bad channels interpolated."""
        return np.concatenate([self.repaired(part, bad) for part, bad in self.segments(samples)], axis=1)

    def repaired(self, part: np.ndarray, bad: dict[str, str]) -> np.ndarray:
        """One stretch under one verdict; a channel not finite at a sample is replaced at that sample too."""
        current = frozenset(self.names.index(n) for n in bad)
        finite = np.isfinite(part)  # (C, n)
        if finite.all() and not current:
            return part
        clean = np.where(finite, part, 0.0)
        out = np.empty_like(clean)
        masks = ~finite.T  # (n, C)
        for mask in np.unique(masks, axis=0):  # a few distinct patterns: usually one
            at = (masks == mask).all(axis=1)
            out[:, at] = repair_matrix(self.names, current | frozenset(np.flatnonzero(mask).tolist()),
                                       self.montage) @ clean[:, at]
        return out
