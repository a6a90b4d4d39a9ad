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

import mne
import numpy as np

from ..errors import UserInputError
from .sources import find_stream, pull, stream_info, to_volts

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
    markers: Counter = field(default_factory=Counter)  # description -> count, of the markers kept
    left_out: int = 0  # markers stamped after the last EEG sample
    ended_by: str = ""

    def progress(self, elapsed: float) -> str:
        return (f"recording {int(elapsed // 60)}:{elapsed % 60:04.1f}  samples={self.samples} "
                f"markers={sum(self.markers.values())}")

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
        self.marker_stamps: list[float] = []
        self.marker_texts: list[str] = []

    def add(self, samples: np.ndarray) -> None:
        self.held.append(samples)
        if sum(h.shape[1] for h in self.held) >= PIECE_S * self.info["sfreq"]:
            self.flush()

    def flush(self) -> None:
        if self.held:
            piece = self.folder / f"piece{len(self.pieces):05d}_raw.fif"
            mne.io.RawArray(np.concatenate(self.held, axis=1), self.info, verbose="error").save(
                piece, fmt=self.fmt, verbose="error")
            self.pieces.append(piece)
            self.held = []

    def finish(self, timeline: Timeline, summary: RecordSummary) -> None:
        """Join the pieces, annotate, save and link into place; the hidden folder goes in any case."""
        try:
            self.flush()
            raw = mne.concatenate_raws([mne.io.read_raw_fif(p, verbose="error") for p in self.pieces],
                                       verbose="error")
            onsets = timeline.index_of(np.array(self.marker_stamps)) / summary.sfreq  # (n_markers,) s
            keep = onsets < raw.n_times / summary.sfreq  # markers before the first sample were refused as they came
            summary.left_out = int((~keep).sum())
            texts = [t for t, k in zip(self.marker_texts, keep) if k]
            summary.markers = Counter(texts)
            # set_annotations replaces all, so the "BAD boundary" marks concatenate_raws puts at the joins go too
            raw.set_annotations(mne.Annotations(np.maximum(onsets[keep], 0.0), 0.0, texts))
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
    inlet = find_stream(name, timeout, "EEG stream", "check --lsl (an amplifier's LSL app, or "
                                                     "mne_lsl.player.PlayerLSL) and the network")
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


def replacement(name: str, uid: str, sfreq: float, n_channels: int) -> str | None:
    """How a stream that now carries the EEG stream's name differs from it (rate or channels), if one does."""
    from mne_lsl.lsl import resolve_streams

    for other in resolve_streams(timeout=0.2, name=name, minimum=1):
        if other.uid != uid and (other.sfreq != sfreq or other.n_channels != n_channels):
            return (f"{n_channels} channels at {sfreq:g} Hz to {other.n_channels} channels at "
                    f"{other.sfreq:g} Hz")
    return None


def record(eeg_name: str, markers_name: str, out: str | Path, duration: float | None = None, timeout: float = 5.0,
           echo: Callable[[str], None] = print, progress: ProgressLine | None = None) -> RecordSummary:
    """Record until --duration, Ctrl-C or silence; return the summary (also when silence ended it: then raise
    UserInputError after saving, with the summary already echoed)."""
    out = Path(out)
    check_out(out)
    eeg, info, scale, fmt = open_eeg(eeg_name, timeout)
    markers = find_stream(markers_name, timeout, "marker stream", "start the cue program (its LSL outlet) "
                                                                  "before recording, or check --markers")
    if markers.n_channels != 1:
        raise UserInputError(f"marker stream {markers_name!r} has {markers.n_channels} channels: a cue stream "
                             f"sends one (string) marker per sample")
    sfreq, uid = info["sfreq"], eeg.get_sinfo().uid
    summary = RecordSummary(out, len(info["ch_names"]), sfreq)
    recorder, timeline = Recorder(out, info, fmt), Timeline(sfreq)
    limit = round(duration * sfreq) if duration is not None else None
    started = heard = shown = checked = time.monotonic()
    first_stamp: float | None = None
    checked_markers = 0  # markers already found to come after the first EEG sample
    failure: str | None = None
    try:
        while True:
            samples, stamps = pull(eeg, WAIT_S)  # (n, C), (n,)
            now = time.monotonic()
            if limit is not None:
                samples, stamps = samples[:limit - summary.samples], stamps[:limit - summary.samples]
            if len(stamps):
                if first_stamp is None:
                    first_stamp = float(stamps[0])
                    with info._unlock():
                        info["meas_date"] = datetime_of(first_stamp)
                heard = now
                timeline.add(summary.samples, stamps)
                recorder.add((samples * scale).T)
                summary.samples += len(stamps)
            texts, mstamps = markers.pull_chunk(timeout=0.0)
            for text, stamp in zip(texts, mstamps):
                recorder.marker_stamps.append(float(stamp))
                recorder.marker_texts.append(str(text[0]) if isinstance(text, list) else f"{text[0]:g}")
            if first_stamp is not None and len(recorder.marker_stamps) > checked_markers:
                check_not_early(recorder, checked_markers, first_stamp, sfreq)
                checked_markers = len(recorder.marker_stamps)
            if limit is not None and summary.samples >= limit:
                summary.ended_by = f"--duration {duration:g} s"
                break
            if now - heard > timeout:
                summary.ended_by = f"silence (no EEG for {timeout:g} s)"
                failure = (f"EEG stream {eeg_name!r} sent no samples for {timeout:g} s: the recording ends there "
                           f"(check the amplifier, or raise --lsl-timeout)")
                break
            if now - heard > min(CHANGE_CHECK_S, timeout) and now - checked > CHANGE_CHECK_S:
                checked = now
                change = replacement(eeg_name, uid, sfreq, summary.n_channels)
                if change:
                    summary.ended_by = "a change of the EEG stream"
                    failure = (f"EEG stream {eeg_name!r} changed from {change} during the recording: what came "
                               f"before is saved; record the new settings into another file")
                    break
            if progress is not None and now - shown >= 1.0:
                shown = now
                progress(summary, now - started)
    except KeyboardInterrupt:
        summary.ended_by = "Ctrl-C"
    except BaseException:
        recorder.discard()
        raise
    finally:
        eeg.close_stream()
        markers.close_stream()
        if progress is not None:
            progress.end()
    if summary.samples == 0:
        recorder.discard()
        raise UserInputError(f"no EEG samples came from {eeg_name!r} ({summary.ended_by}): nothing was written; "
                             f"check that the amplifier is streaming")
    with ctrl_c_ignored():  # a second Ctrl-C while saving must not lose the whole session
        recorder.finish(timeline, summary)
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


def check_not_early(recorder: Recorder, start: int, first_stamp: float, sfreq: float) -> None:
    """Markers from `start` on must not precede the first EEG sample by more than one sample period (a marker
    stamped that close before it still belongs to it)."""
    stamps = np.array(recorder.marker_stamps[start:])
    early = first_stamp - stamps.min()
    if early > 1.0 / sfreq:
        text = recorder.marker_texts[start + int(stamps.argmin())]
        raise UserInputError(f"a marker ({text!r}) came {early:.3f} s before the first EEG sample: start the EEG "
                             f"stream before the cue program sends cues, then record again (nothing was written)")


def datetime_of(stamp: float) -> datetime:
    """The UTC wall-clock time of an LSL timestamp of this machine (for the file's meas_date)."""
    from mne_lsl.lsl import local_clock

    return datetime.fromtimestamp(time.time() - (local_clock() - stamp), tz=timezone.utc)
