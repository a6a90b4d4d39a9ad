"""Decisions out, for a controller to act on: an LSL outlet, and JSON lines to a file or a pipe.

LSL decision stream NAME (type "Decisions", irregular rate, float64), one sample per decided frame:

    channel 0 .. K-1   p_<class>   the frame's class probabilities, in the model's class order
    channel K          decision    the smoothed (Hysteresis) class index, -1 while undecided
    timestamp                      LSL timestamp of the last EEG sample the frame needs (the decoder's local clock)
    description        <classes><class>NAME</class>...</classes> and <eeg2arm> (source, hysteresis settings)

LSL marker stream NAME-markers (type "Markers", one string channel, irregular), each with the timestamp of the frame
it comes with: the decision's class name, or "undecided" when it is released, each time it changes; "bad: C3, Fp1"
(or "bad: none") when the replaced channels change; "gap" on the first frame after a gap restarted the decoder.

A subscriber's latency is its local_clock() at arrival minus the timestamp (plus its inlet's time_correction()
when it runs on another machine). JSON lines carry the same per frame: {"time": LSL timestamp, "t": s into the
stream, "index" (the decision's number from 0: `#K` in the printed lines), "probs", "decision", "label",
"bad_channels": [names], "gap": bool}.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from pathlib import Path
from typing import IO

import numpy as np

from ..config import EEGConfig
from ..errors import UserInputError
from .live import Decided, Sink
from .smoothing import Hysteresis
from .sources import quiet_liblsl

NAME_CHECK_S = 1.0  # how long to look for streams already using the names (liblsl's advice: at least 0.5 s)


class LSLDecisions:
    """The decision stream NAME and the marker stream NAME-markers (layout in the module docstring)."""

    def __init__(self, name: str, config: EEGConfig, source: str, hysteresis: Hysteresis):
        quiet_liblsl()
        from mne_lsl.lsl import StreamInfo, StreamOutlet, resolve_streams

        on_network = {info.name for info in resolve_streams(timeout=NAME_CHECK_S)}
        for taken in (name, f"{name}-markers"):
            if taken in on_network:
                raise UserInputError(f"an LSL stream named {taken!r} is already on the network: choose another "
                                     f"--out-lsl name (controllers subscribe by name, so it must be unique)")
        classes = config.labels
        source_id = f"eeg2arm-{uuid.uuid4().hex}"
        info = StreamInfo(name, "Decisions", len(classes) + 1, 0.0, "float64", source_id)
        info.set_channel_names([f"p_{c}" for c in classes] + ["decision"])
        desc = info.desc
        names = desc.append_child("classes")
        for c in classes:
            names.append_child_value("class", c)
        about = desc.append_child("eeg2arm")
        for key, value in (("source", source), ("enter", hysteresis.enter), ("exit", hysteresis.exit),
                           ("min_frames", hysteresis.min_frames), ("undecided", Hysteresis.UNDECIDED)):
            about.append_child_value(key, str(value))
        markers = StreamInfo(f"{name}-markers", "Markers", 1, 0.0, "string", f"{source_id}-markers")
        markers.set_channel_names(["decision"])
        self.decisions: StreamOutlet | None = StreamOutlet(info)
        self.markers: StreamOutlet | None = StreamOutlet(markers)

    def send(self, decided: Decided, changed: bool) -> None:
        r = decided.result
        self.decisions.push_sample(np.append(r.probs.astype(np.float64), r.decision), timestamp=decided.stamp)
        if decided.gap:
            self.markers.push_sample(["gap"], timestamp=decided.stamp)
        if decided.bad_changed:
            self.markers.push_sample([f"bad: {', '.join(decided.bad_channels) or 'none'}"], timestamp=decided.stamp)
        if changed:
            self.markers.push_sample([decided.label], timestamp=decided.stamp)

    def close(self) -> None:
        """Take both streams off the network now (subscribers see them end), not whenever they are collected.

        mne-lsl (1.14) has no public close: a StreamOutlet is destroyed in __del__, which CPython runs as soon as
        the last reference goes; these are the only ones (tests/test_live.py checks the streams are gone).
        """
        self.decisions = self.markers = None


class JsonLines:
    """One JSON object per decided frame, a line each, flushed as it is written: to a new file or to stdout ("-").

    The file is created with the first decision, so a run that fails before deciding anything leaves none.
    """

    def __init__(self, path: str):
        self.path, self.file = path, None
        if path != "-":
            target = Path(path)
            if target.exists():
                raise UserInputError(f"--out-jsonl {path} exists: choose a new file name (decisions are never "
                                     f"appended to or written over an earlier run's)")
            folder = target.parent
            if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
                raise UserInputError(f"--out-jsonl {path} cannot be written (no folder {folder} we may write to): "
                                     f"give a path in a writable folder, or - for stdout")

    def _open(self) -> IO[str]:
        if self.path == "-":
            return sys.stdout
        try:
            return open(self.path, "x", encoding="utf-8")
        except OSError as e:
            raise UserInputError(f"--out-jsonl {self.path} cannot be written ({e.strerror}): give a new path in "
                                 f"a writable folder") from None

    def send(self, decided: Decided, changed: bool) -> None:
        self.file = self.file or self._open()
        r = decided.result
        line = {"time": decided.stamp, "t": round(decided.t, 6), "index": decided.index, "probs": r.probs.tolist(),
                "decision": r.decision, "label": decided.label, "bad_channels": list(decided.bad_channels),
                "gap": decided.gap}
        self.file.write(json.dumps(line) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is not None and self.file is not sys.stdout:
            self.file.close()


def open_sinks(stack: contextlib.ExitStack, out_lsl: str | None, out_jsonl: str | None, config: EEGConfig,
               source: str, hysteresis: Hysteresis) -> list[Sink]:
    """The sinks `eeg2arm stream --out-jsonl/--out-lsl` asked for, closed when `stack` closes."""
    sinks: list[Sink] = []
    if out_jsonl is not None:
        sinks.append(stack.enter_context(contextlib.closing(JsonLines(out_jsonl))))
    if out_lsl is not None:
        sinks.append(stack.enter_context(contextlib.closing(LSLDecisions(out_lsl, config, source, hysteresis))))
    return sinks
