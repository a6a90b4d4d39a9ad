"""What the page is told, as JSON text messages: once `meta` (the stream and the model), then one `decision` per
decided frame, at last `end`; a page that fell behind also gets `skipped` (see server.py).

    {"type": "decision", "index": 12, "t": 6.5, "probs": [0.1, 0.9], "decision": 1, "label": "eyes_closed",
     "held_s": 2.5, "gap": false, "bad": {"O1": "flat"}, "sd_uv": [12.3, ...], "arm": {"x": -0.01, "vx": 0.0},
     "stats": {"frames_per_s": 4.0, "latency_ms": {"last": 1.9, "p50": 1.8, "max": 2.6}, "gaps": 0,
               "frames_lost": 0, "view_dropped": 0}}

`sd_uv` is each channel's standard deviation over its last second of raw signal (µV; null when it held no finite
sample), `bad` the channels the stream replaces at that frame with why (eeg2arm.realtime.health's verdicts on
that second), `held_s` how long the decision has held in the stream's time, `frames_lost` the feature frames no
decision covers because the signal was lost in gaps, `view_dropped` decisions the view itself let go because they
came faster than it could tell them (a --fast replay). The Publisher builds them in order, off the stream's thread.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..health import verdicts
from ..live import Decided, StreamSummary
from ..smoothing import Hysteresis
from .arm import REACH, SPEED, SimulatedArm

HEALTH_EVERY_S = 0.25  # s of wall time between two signal-health updates (a --fast replay decides far faster)
RATE_S = 5.0  # s of wall time the frame rate is measured over
LATENCY_N = 50  # the stream's latest latencies the page's p50 and max are taken over


@dataclass(frozen=True)
class About:
    """What the page shows about the stream before any decision."""

    classes: tuple[str, ...]
    channels: tuple[str, ...]  # the raw channels the signal health is given for
    hysteresis: Hysteresis
    frame_step: float  # s between feature frames
    pool: int  # feature frames per decision
    source: str
    backend: str
    history_s: float = 30.0  # s of probabilities the page draws

    def meta(self) -> str:
        h = self.hysteresis
        return json.dumps({"type": "meta", "classes": list(self.classes), "channels": list(self.channels),
                           "enter": h.enter, "exit": h.exit, "min_frames": h.min_frames, "source": self.source,
                           "backend": self.backend, "decision_every_s": self.frame_step * self.pool,
                           "history_s": self.history_s, "arm": {"reach": REACH, "speed": SPEED}})


def channel_sd(recent: np.ndarray | None, n: int) -> list[float | None]:
    """Each channel's standard deviation (µV, 0.1 µV steps) over the samples it has, None where it has none."""
    if recent is None or not recent.shape[1]:
        return [None] * n
    finite = np.isfinite(recent)
    count = finite.sum(axis=1)
    x = np.where(finite, recent, 0.0)
    mean = x.sum(axis=1) / np.maximum(count, 1)
    sd = np.sqrt((np.where(finite, recent - mean[:, None], 0.0) ** 2).sum(axis=1) / np.maximum(count, 1))
    return [round(float(s), 1) if c else None for s, c in zip(sd, count)]


class Publisher:
    """Decided frames in (with their arrival on the wall clock), the page's `decision` messages out."""

    def __init__(self, about: About, summary: StreamSummary):
        self.about, self.summary = about, summary
        self.arm = SimulatedArm()
        self.since = 0.0  # when the current decision began, in the stream's time
        self.previous: Decided | None = None
        self.arrivals: deque[float] = deque()  # wall-clock arrivals of the decisions within RATE_S
        self.frames_lost = self.view_dropped = 0
        self.health: tuple[float, dict[str, str], list[float | None]] = (-np.inf, {}, [])

    def decision(self, decided: Decided, changed: bool, arrived: float) -> str:
        r, previous = decided.result, self.previous
        if previous is not None:
            self.view_dropped += decided.index - previous.index - 1
            step = (decided.t - previous.t) / self.about.frame_step  # feature frames between the two decisions
            self.frames_lost += max(0, round(step) - self.about.pool * (decided.index - previous.index))
        if changed or previous is None:
            self.since = decided.t
        self.previous = decided
        confidence = float(r.probs[r.decision]) if r.decision != Hysteresis.UNDECIDED else 0.0
        self.arm.move(decided.t, decided.label, confidence)
        self.arrivals.append(arrived)
        while arrived - self.arrivals[0] > RATE_S:
            self.arrivals.popleft()
        span = self.arrivals[-1] - self.arrivals[0]
        rate = (len(self.arrivals) - 1) * self.about.pool / span if span > 0 else None
        latencies = self.summary.latencies_ms[-LATENCY_N:]  # the stream's own: chunk in -> its decisions out
        return json.dumps({
            "type": "decision", "index": decided.index, "t": round(decided.t, 3),
            "probs": [round(float(p), 4) for p in r.probs], "decision": r.decision, "label": decided.label,
            "held_s": round(decided.t - self.since, 3), "gap": decided.gap,
            **self.signal_health(decided, arrived),
            "arm": {"x": round(self.arm.x, 4), "vx": round(self.arm.vx, 4)},
            "stats": {"frames_per_s": None if rate is None else round(rate, 2),
                      "latency_ms": {"last": round(latencies[-1], 2), "p50": round(float(np.median(latencies)), 2),
                                     "max": round(max(latencies), 2)} if latencies else None,
                      "gaps": self.summary.gaps, "frames_lost": self.frames_lost, "view_dropped": self.view_dropped}})

    def signal_health(self, decided: Decided, arrived: float) -> dict:
        """Each channel's spread and the bad ones with why; recomputed at most every HEALTH_EVERY_S of wall time."""
        at, why, sd = self.health
        if arrived - at >= HEALTH_EVERY_S or decided.bad_changed:
            recent = decided.recent
            why = {self.about.channels[c]: v for c, v in verdicts(recent).items()} if recent is not None and \
                recent.shape[1] else {}
            sd = channel_sd(recent, len(self.about.channels))
            self.health = (arrived, why, sd)
        return {"bad": {name: why.get(name, "bad") for name in decided.bad_channels}, "sd_uv": sd}
