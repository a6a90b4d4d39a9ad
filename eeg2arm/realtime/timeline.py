"""Where cue markers land on a recording: the EEG's timeline (sample index <-> LSL time) and the cue stream.

Each marker lands on the EEG's timeline through its LSL timestamp: both inlets correct their clock offset to
this machine (liblsl's clocksync), and the marker's onset is where its stamp falls among the EEG samples' stamps,
interpolated between anchors (sample index, stamp) kept once a second and at every jump in the stamps, so an
amplifier clock that drifts from its nominal rate is followed in bounded memory. The EEG's stamps reach the
timeline made non-decreasing (sources.going_back ends a recording on larger steps back): jitter of an anchor's
stamp moves the markers near it by as much, no more.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UserInputError
from .sources import JUMP_S

if TYPE_CHECKING:
    from mne_lsl.lsl import StreamInlet

ANCHOR_S = 1.0  # seconds between timeline anchors


class Timeline:
    """EEG sample index <-> LSL time, through anchors (index, stamp) and the newest sample."""

    def __init__(self, sfreq: float):
        self.sfreq = sfreq
        self.index: list[float] = []
        self.stamp: list[float] = []
        self.last = (-1, -np.inf)  # (index, stamp) of the newest sample

    def add(self, first_index: int, stamps: np.ndarray) -> None:
        """The stamps (n,) of samples first_index, first_index + 1, ... (following the last ones): jitter back in
        time is evened out; anchors go where a second has passed since the last one, and on both sides of every
        jump (a pause, lost samples; mid-chunk too), so that no marker is interpolated across one."""
        seq = np.maximum.accumulate(np.concatenate([[self.last[1]], stamps]))  # (1 + n,) the last sample, then these
        jumps = 1 + np.flatnonzero(np.abs(np.diff(seq) - 1 / self.sfreq) > JUMP_S)  # positions in seq after a jump
        at = {*jumps, *(jumps - 1)}
        if not self.stamp or seq[1] - self.stamp[-1] >= ANCHOR_S:
            at.add(1)
        for p in sorted(at):
            index = first_index - 1 + p  # seq[p] is sample first_index - 1 + p
            if np.isfinite(seq[p]) and (not self.index or index > self.index[-1]):
                self.index.append(index)
                self.stamp.append(float(seq[p]))
        self.last = (first_index + len(stamps) - 1, float(seq[-1]))

    def index_of(self, stamps: np.ndarray) -> np.ndarray:
        """Fractional sample indices of LSL times (beyond the ends: at the nominal rate)."""
        index, stamp = np.array(self.index + [self.last[0]]), np.array(self.stamp + [self.last[1]])
        inside = np.interp(stamps, stamp, index)
        before = index[0] + (stamps - stamp[0]) * self.sfreq
        after = index[-1] + (stamps - stamp[-1]) * self.sfreq
        return np.where(stamps < stamp[0], before, np.where(stamps > stamp[-1], after, inside))


class Markers:
    """A cue stream's samples -> markers (stamp, description, duration s). Three kinds of marker stream are read:
    one string channel (cue programs), one numeric channel (event codes, kept as text), and mne-lsl's one-hot
    annotations (`mne-lsl player --annotations`: a channel per description, valued the duration, -1 for none)."""

    def __init__(self, inlet: "StreamInlet", name: str):
        self.inlet: StreamInlet | None = inlet  # None once the stream has gone
        if inlet.sfreq > 0:
            raise UserInputError(f"--markers {name!r} is a signal at {inlet.sfreq:g} Hz ({inlet.n_channels} "
                                 f"channels), not a marker stream: give the cue program's stream (irregular rate)")
        self.one_hot = inlet.dtype != "string" and inlet.stype == "annotations"
        self.names = inlet.get_sinfo().get_channel_names() if self.one_hot else None
        if not self.one_hot and inlet.n_channels != 1:
            raise UserInputError(f"marker stream {name!r} has {inlet.n_channels} channels: a cue stream sends one "
                                 f"(string) marker per sample")

    def pull(self) -> list[tuple[float, str, float]]:
        values, stamps = self.inlet.pull_chunk(timeout=0.0)
        if self.one_hot:  # (n, n_descriptions)
            return [(float(stamps[i]), self.names[j], max(float(values[i, j]), 0.0))
                    for i, j in zip(*np.nonzero(values))]
        if self.inlet.dtype == "string":
            return [(float(t), v[0], 0.0) for v, t in zip(values, stamps)]
        return [(float(t), f"{v[0]:g}", 0.0) for v, t in zip(values, stamps)]


def first_early(markers: list[tuple[float, str, float]], first_stamp: float, sfreq: float) -> int | None:
    """Where the first of `markers` (stamp, text, duration) stamped more than one sample period before the first
    EEG sample is (a marker that close before it still belongs to it), or None."""
    return next((i for i, (stamp, _, _) in enumerate(markers) if first_stamp - stamp > 1.0 / sfreq), None)


def datetime_of(stamp: float) -> datetime:
    """The UTC wall-clock time of an LSL timestamp of this machine (for the file's meas_date)."""
    from mne_lsl.lsl import local_clock

    return datetime.fromtimestamp(time.time() - (local_clock() - stamp), tz=timezone.utc)
