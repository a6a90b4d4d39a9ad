"""`eeg2arm record`: a live EEG stream and a cue-marker stream (LSL) -> one FIF file, the cues as annotations.

Each marker lands on the EEG's timeline through its LSL timestamp: both inlets correct their clock offset to
this machine (liblsl's clocksync), and the marker's onset is where its stamp falls among the EEG samples' stamps,
interpolated between anchors (sample index, stamp) kept once a second and at every jump in the stamps, so an
amplifier clock that drifts from its nominal rate is followed in bounded memory.

The signal goes to disk as it comes, in pieces of PIECE_S seconds (FIF, in SI units, at the stream's
precision) inside a hidden folder beside --out. At the end the pieces are read back lazily, joined, given the
annotations, saved once more in that folder and linked into place: --out appears whole or not at all, and is
never written over. --duration, Ctrl-C, or a stream silent for --lsl-timeout ends the recording and saves it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import mne
import numpy as np

from ..errors import UserInputError
from .sources import find_stream, pull, stream_info, to_volts

if TYPE_CHECKING:
    from mne_lsl.lsl import StreamInfo, StreamInlet

PIECE_S = 10.0  # seconds of signal held in memory before they go to disk
ANCHOR_S = 1.0  # seconds between timeline anchors
JUMP_S = 0.1  # a stamp this far off the nominal rate starts a new anchor (a stream that paused and went on)
WAIT_S = 0.05  # longest blocking wait for EEG, so markers and the clock are looked at often
CHANGE_CHECK_S = 1.0  # during a silence, how often to look for a stream that took the EEG stream's name


@dataclass
class RecordSummary:
    out: Path
    n_channels: int
    sfreq: float
    samples: int = 0
    received: int = 0  # markers received so far
    markers: Counter = field(default_factory=Counter)  # description -> count, of the markers kept
    left_out: int = 0  # markers stamped after the last EEG sample
    ended_by: str = ""

    def progress(self, elapsed: float) -> str:
        return (f"recording {int(elapsed // 60)}:{elapsed % 60:04.1f}  samples={self.samples} "
                f"markers={self.received}")

    def line(self) -> str:
        counts = ", ".join(f"{k} {n}" for k, n in sorted(self.markers.items()))
        late = f"; {self.left_out} marker(s) after the last sample left out" if self.left_out else ""
        return (f"wrote {self.out}: {self.n_channels} channels at {self.sfreq:g} Hz, {self.samples / self.sfreq:.2f} s "
                f"({self.samples} samples), {sum(self.markers.values())} markers ({counts or 'none'}){late}; "
                f"ended by {self.ended_by}")


class Timeline:
    """EEG sample index <-> LSL time, through anchors (index, stamp) and the newest sample."""

    def __init__(self, sfreq: float):
        self.sfreq = sfreq
        self.index: list[float] = []
        self.stamp: list[float] = []
        self.last = (-1, 0.0)  # (index, stamp) of the newest sample

    def add(self, first_index: int, stamps: np.ndarray) -> None:
        last_index, last_stamp = self.last
        expected = last_stamp + (first_index - last_index) / self.sfreq
        if not self.stamp or stamps[0] - self.stamp[-1] >= ANCHOR_S or abs(stamps[0] - expected) > JUMP_S:
            self.index.append(first_index)
            self.stamp.append(float(stamps[0]))
        self.last = (first_index + len(stamps) - 1, float(stamps[-1]))

    def index_of(self, stamps: np.ndarray) -> np.ndarray:
        """Fractional sample indices of LSL times (beyond the ends: at the nominal rate)."""
        index, stamp = np.array(self.index + [self.last[0]]), np.array(self.stamp + [self.last[1]])
        inside = np.interp(stamps, stamp, index)
        before = index[0] + (stamps - stamp[0]) * self.sfreq
        after = index[-1] + (stamps - stamp[-1]) * self.sfreq
        return np.where(stamps < stamp[0], before, np.where(stamps > stamp[-1], after, inside))


class ProgressLine:
    """Elapsed time, samples and markers, once a second: redrawn in place on a terminal, a line every 10 s in a log."""

    def __init__(self, write: Callable[[str], None], tty: bool):
        self.write, self.tty, self.ticks = write, tty, 0

    def __call__(self, summary: RecordSummary, elapsed: float) -> None:
        self.ticks += 1
        if self.tty:
            self.write(f"\r{summary.progress(elapsed)}")
        elif self.ticks % 10 == 0:
            self.write(f"{summary.progress(elapsed)}\n")

    def end(self) -> None:
        if self.tty and self.ticks:
            self.write("\n")


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


def check_out(out: Path) -> None:
    if out.suffix != ".fif":
        raise UserInputError(f"--out {out} must end in .fif (the recording is written as FIF)")
    if out.exists():
        raise UserInputError(f"--out {out} exists: choose a new name (a recording is never written over)")
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK | os.X_OK):
        raise UserInputError(f"--out {out} cannot be written: {out.parent} is not a folder we may write to")


class Recorder:
    """Pieces of signal on disk, markers in memory; `finish` joins them into --out."""

    def __init__(self, out: Path, info: mne.Info, fmt: str):
        self.out, self.info, self.fmt = out, info, fmt
        try:
            self.folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".recording", dir=out.parent))
        except OSError as e:
            raise UserInputError(f"--out {out} cannot be written ({e.strerror}): choose a writable folder") from None
        self.pieces: list[Path] = []
        self.held: list[np.ndarray] = []  # (C, n) volts, not yet on disk
        self.held_samples = 0
        self.markers: list[tuple[float, str, float]] = []  # (LSL stamp, description, duration s)

    def add(self, samples: np.ndarray) -> None:
        self.held.append(samples)
        self.held_samples += samples.shape[1]
        if self.held_samples >= PIECE_S * self.info["sfreq"]:
            self.flush()

    def flush(self) -> None:
        if self.held:
            piece = self.folder / f"piece{len(self.pieces):05d}_raw.fif"
            mne.io.RawArray(np.concatenate(self.held, axis=1), self.info, verbose="error").save(
                piece, fmt=self.fmt, verbose="error")
            self.pieces.append(piece)
            self.held, self.held_samples = [], 0

    def finish(self, timeline: Timeline, summary: RecordSummary) -> None:
        """Join the pieces, annotate, save and link into place; the hidden folder goes in any case."""
        try:
            self.flush()
            raw = mne.concatenate_raws([mne.io.read_raw_fif(p, verbose="error") for p in self.pieces],
                                       verbose="error")
            onsets = timeline.index_of(np.array([m[0] for m in self.markers])) / summary.sfreq  # (n_markers,) s
            keep = onsets < raw.n_times / summary.sfreq  # markers before the first sample were refused as they came
            kept = [m for m, k in zip(self.markers, keep) if k]
            summary.left_out, summary.markers = len(self.markers) - len(kept), Counter(m[1] for m in kept)
            # set_annotations replaces all, so the "BAD boundary" marks concatenate_raws puts at the joins go too
            raw.set_annotations(mne.Annotations(np.maximum(onsets[keep], 0.0), [m[2] for m in kept],
                                                [m[1] for m in kept]), verbose="error")
            whole = self.folder / self.out.name
            raw.save(whole, fmt=self.fmt, verbose="error")
            with open(whole, "rb") as f:
                os.fsync(f.fileno())
            try:
                os.link(whole, self.out)  # unlike a rename, never replaces a file that appeared meanwhile
            except FileExistsError:
                kept = self.out.with_name(f"{self.out.stem}-{int(time.time())}.fif")
                os.link(whole, kept)
                raise UserInputError(f"{self.out} appeared while recording: the recording is saved as {kept} "
                                     f"instead") from None
        finally:
            self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def open_eeg(name: str, timeout: float) -> tuple:
    # not recovered by liblsl: a recording must not go on from another stream that shares the source_id
    inlet = find_stream(name, timeout, "EEG stream", "check --lsl (an amplifier's LSL app, or "
                                                     "mne_lsl.player.PlayerLSL) and the network", recover=False)
    if inlet.dtype == "string" or inlet.sfreq <= 0:
        raise UserInputError(f"LSL stream {name!r} is not a signal at a regular rate ({inlet.dtype}, "
                             f"{inlet.sfreq:g} Hz): give the amplifier's stream to --lsl, the cues to --markers")
    info = stream_info(inlet)
    scale = to_volts(info)[None, :]  # (1, C): the stream's units -> SI, as FIF stores them
    with info._unlock():
        for ch in info["chs"]:
            ch["unit_mul"] = 0
    fmt = "double" if inlet.dtype in (np.float64, "float64") else "single"
    return inlet, info, scale, fmt


def lookup(name: str, wait: float) -> list["StreamInfo"]:
    from mne_lsl.lsl import resolve_streams

    return resolve_streams(timeout=wait, name=name, minimum=1)


class Session:
    """A recording in progress: the two inlets, the pieces on disk, the timeline and the counts."""

    def __init__(self, eeg_name: str, markers_name: str, out: Path, timeout: float):
        check_out(out)
        self.name, self.timeout = eeg_name, timeout
        self.eeg, info, self.scale, fmt = open_eeg(eeg_name, timeout)
        hint = "start the cue program (its LSL outlet) before recording, or check --markers"
        self.markers = Markers(find_stream(markers_name, timeout, "marker stream", hint, recover=False),
                               markers_name)
        self.info, self.uid = info, self.eeg.get_sinfo().uid
        self.summary = RecordSummary(out, len(info["ch_names"]), info["sfreq"])
        self.recorder, self.timeline = Recorder(out, info, fmt), Timeline(info["sfreq"])
        self.first_stamp: float | None = None
        self.checked_markers = 0  # markers already found to come after the first EEG sample
        self.heard = self.looked = time.monotonic()

    def step(self, limit: int | None) -> tuple[str, str | None] | None:
        """Take what arrived; once the recording is over, (what ended it, the error to report or None)."""
        summary, sfreq = self.summary, self.summary.sfreq
        try:
            samples, stamps = pull(self.eeg, WAIT_S)  # (n, C), (n,)
        except RuntimeError:  # mne-lsl's LostError: the stream left the network (liblsl notices it late, if at all)
            return self.gone(wait=min(self.timeout, 2.0))
        now = time.monotonic()
        if limit is not None:
            samples, stamps = samples[:limit - summary.samples], stamps[:limit - summary.samples]
        previous = np.concatenate([[self.timeline.last[1] if summary.samples else -np.inf], stamps[:-1]])  # (n,)
        back = np.flatnonzero(stamps < previous - 0.5 / sfreq)  # where the stamps go back, if they do
        cut = back[0] if back.size else len(stamps)
        if cut:
            if self.first_stamp is None:
                self.first_stamp = float(stamps[0])
                with self.info._unlock():
                    self.info["meas_date"] = datetime_of(self.first_stamp)
            self.heard = now
            self.timeline.add(summary.samples, stamps[:cut])
            self.recorder.add((samples[:cut] * self.scale).T)
            summary.samples += cut
        if back.size:
            return "the EEG timestamps going back", (
                f"EEG stream {self.name!r} sent samples stamped {previous[cut] - stamps[cut]:.3f} s before the "
                f"last ones (it restarted, or sent old samples again): the recording ends before them")
        if self.markers.inlet is not None:
            try:
                self.recorder.markers.extend(self.markers.pull())
                summary.received = len(self.recorder.markers)
            except RuntimeError:  # the cue program stopped: the EEG may well go on (ended with Ctrl-C)
                self.markers.inlet.close_stream()
                self.markers.inlet = None
        if self.first_stamp is not None and len(self.recorder.markers) > self.checked_markers:
            check_not_early(self.recorder.markers[self.checked_markers:], self.first_stamp, sfreq)
            self.checked_markers = len(self.recorder.markers)
        if limit is not None and summary.samples >= limit:
            return f"--duration {limit / sfreq:g} s", None
        if now - self.heard > self.timeout:
            return self.gone(wait=0.5)
        if now - self.heard > min(CHANGE_CHECK_S, self.timeout) and now - self.looked > CHANGE_CHECK_S:
            self.looked = now  # an amplifier app restarted with other settings is told apart early
            if any(self.differs(other) for other in lookup(self.name, 0.2)):
                return self.gone(wait=0.2)
        return None

    def differs(self, other: "StreamInfo") -> bool:
        return other.uid != self.uid and (other.sfreq != self.summary.sfreq or
                                          other.n_channels != self.summary.n_channels)

    def gone(self, wait: float) -> tuple[str, str]:
        """Why the EEG stopped: another stream took its name with other settings, it left, or it fell silent."""
        found = lookup(self.name, wait)  # an app restarting takes a moment to announce its stream again
        s = self.summary
        for other in found:
            if self.differs(other):
                return "a change of the EEG stream", (
                    f"EEG stream {self.name!r} changed from {s.n_channels} channels at {s.sfreq:g} Hz to "
                    f"{other.n_channels} channels at {other.sfreq:g} Hz during the recording: what came before is "
                    f"saved; record the new settings into another file")
        if not any(other.uid == self.uid for other in found):
            return "the EEG stream's end", (f"EEG stream {self.name!r} left the network (its app stopped, or the "
                                            f"connection broke): the recording ends there")
        return f"silence (no EEG for {self.timeout:g} s)", (
            f"EEG stream {self.name!r} sent no samples for {self.timeout:g} s: the recording ends there (check the "
            f"amplifier, or raise --lsl-timeout)")

    def close(self) -> None:
        self.eeg.close_stream()
        if self.markers.inlet is not None:
            self.markers.inlet.close_stream()


def record(eeg_name: str, markers_name: str, out: str | Path, duration: float | None = None, timeout: float = 5.0,
           echo: Callable[[str], None] = print, progress: ProgressLine | None = None) -> RecordSummary:
    """Record until --duration, Ctrl-C, silence or a change of the EEG stream; save and echo the summary. When
    the stream failed (silence, a change) that error is raised after the summary: what came before is saved."""
    session = Session(eeg_name, markers_name, Path(out), timeout)
    summary = session.summary
    limit = round(duration * summary.sfreq) if duration is not None else None
    started = shown = time.monotonic()
    failure = None
    try:
        while (ended := session.step(limit)) is None:
            if progress is not None and time.monotonic() - shown >= 1.0:
                shown = time.monotonic()
                progress(summary, shown - started)
        summary.ended_by, failure = ended
    except KeyboardInterrupt:
        summary.ended_by = "Ctrl-C"
    except BaseException:
        session.recorder.discard()
        raise
    finally:
        session.close()
        if progress is not None:
            progress.end()
    if summary.samples == 0:
        session.recorder.discard()
        raise UserInputError(f"no EEG samples came from {eeg_name!r} ({summary.ended_by}): nothing was written; "
                             f"check that the amplifier is streaming")
    with ctrl_c_ignored():  # a second Ctrl-C while saving must not lose the whole session
        session.recorder.finish(session.timeline, summary)
    echo(summary.line())
    if failure:
        raise UserInputError(failure)
    return summary


@contextlib.contextmanager
def ctrl_c_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets SIGINT
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def check_not_early(markers: list[tuple[float, str, float]], first_stamp: float, sfreq: float) -> None:
    """No marker may precede the first EEG sample by more than one sample period (a marker stamped that close
    before it still belongs to it)."""
    stamp, text, _ = min(markers)
    early = first_stamp - stamp
    if early > 1.0 / sfreq:
        raise UserInputError(f"a marker ({text!r}) came {early:.3f} s before the first EEG sample: start the EEG "
                             f"stream before the cue program sends cues, then record again (nothing was written)")


def datetime_of(stamp: float) -> datetime:
    """The UTC wall-clock time of an LSL timestamp of this machine (for the file's meas_date)."""
    from mne_lsl.lsl import local_clock

    return datetime.fromtimestamp(time.time() - (local_clock() - stamp), tz=timezone.utc)
