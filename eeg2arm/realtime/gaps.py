"""Gaps in a live stream: samples lost in transit (the LSL stamps jump ahead) and runs of samples that are NaN on
every channel (an amplifier's dropout), bridged or reported the same way however the stream is chunked.

A step between consecutive stamps longer than LOST_PERIODS sample periods and JITTER_S means samples were lost:
round(step * sfreq) - 1 of them (smaller steps are an app's timestamp jitter). A gap of up to BRIDGE_S is bridged
by a straight line between the samples around it (stamped in between at the nominal rate); a longer one is
reported: the chunk after it carries `gap` (seconds lost), and the decoder restarts from a clean state there
(eeg2arm.realtime.live). A NaN run is held until its first finite sample arrives, then bridged or reported alike.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .sources import Chunk

LOST_PERIODS = 2.5  # a step longer than this many sample periods ...
JITTER_S = 0.02  # ... and than this (an app stamping its chunks as the OS schedules it) means lost samples
BRIDGE_S = 0.2  # gaps up to this long are bridged; longer ones restart the decoder


class GapBridge:
    """Chunks (C, n) with stamps in; chunks of a signal with no hole out (see the module docstring)."""

    def __init__(self, sfreq: float):
        self.sfreq, self.bridge = sfreq, round(BRIDGE_S * sfreq)
        self.jump = max(LOST_PERIODS / sfreq, JITTER_S)
        self.last: tuple[np.ndarray, float] | None = None  # the last finite sample (C,) and its stamp
        self.previous: tuple[float, bool] | None = None  # the last sample's stamp and whether it was a dropout
        self.missing = 0  # samples lost or dropped out since the last finite one
        self.gaps = 0  # gaps reported (not bridged)

    def push(self, chunk: Chunk) -> Iterator[Chunk]:
        samples, stamps = chunk.samples, chunk.stamps
        if not len(stamps):
            return
        dropout = ~np.isfinite(samples).any(axis=0)  # (n,) samples with no finite channel
        before, was_dropout = self.previous or (stamps[0], bool(dropout[0]))
        step = np.diff(np.concatenate([[before], stamps]))  # (n,) from the sample before each
        lost = np.where(step > self.jump, np.round(step * self.sfreq).astype(int) - 1, 0)  # (n,)
        starts = np.flatnonzero((lost > 0) | (dropout != np.concatenate([[was_dropout], dropout[:-1]])))
        for a, b in zip([0, *starts], [*starts, len(stamps)]):  # stretches: one kind, any jump at their start
            if b > a:
                yield from self.stretch(samples[:, a:b], stamps[a:b], int(lost[a]), bool(dropout[a]))
        self.previous = (float(stamps[-1]), bool(dropout[-1]))

    def stretch(self, samples: np.ndarray, stamps: np.ndarray, lost: int, dropout: bool) -> Iterator[Chunk]:
        self.missing += lost
        if dropout:
            self.missing += len(stamps)
            return
        if self.missing and self.last is not None:
            if self.missing <= self.bridge:
                yield self.bridged(self.missing, samples[:, 0], float(stamps[0]))
                yield Chunk(samples, stamps)
            else:
                self.gaps += 1
                yield Chunk(samples, stamps, gap=self.missing / self.sfreq)
        else:  # a dropout before the first finite sample is no gap: the stream starts after it
            yield Chunk(samples, stamps)
        self.missing, self.last = 0, (samples[:, -1], float(stamps[-1]))

    def bridged(self, missing: int, after: np.ndarray, after_stamp: float) -> Chunk:
        """`missing` samples on the straight line from the last finite sample to `after`, stamped in between."""
        before, before_stamp = self.last
        w = np.arange(1, missing + 1) / (missing + 1)  # (m,)
        line = before[:, None] + (after - before)[:, None] * w  # (C, m)
        return Chunk(line, before_stamp + (after_stamp - before_stamp) * w)
