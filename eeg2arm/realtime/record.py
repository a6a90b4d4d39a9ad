"""`eeg2arm record`: a live EEG stream and a cue-marker stream (LSL) -> one FIF file, the cues as annotations.

The session here: two inlets, what arrives put on the timeline (timeline.py) and into the recording on disk
(recorder.py), a progress line, and what ends it. --duration, Ctrl-C, SIGTERM or SIGHUP (a service manager
stopping us, a closed terminal) end the recording and save it; so do a stream silent for --lsl-timeout, one that
left the network, another stream taking the name with another rate or channel count, and stamps going back
(sources.py), each also reported as a one-line error after the summary.
"""
from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np

from ..atomic import Terminated, interruptions_ignored, terminate_raises
from ..errors import UserInputError
from .health import ChannelWatch
from .recorder import Recorder, check_out, report_unfinished
from .sources import StreamWatch, find_stream, going_back, pull, stream_info, stream_units, went_back
from .timeline import Markers, Timeline, datetime_of, first_early

WAIT_S = 0.05  # longest blocking wait for EEG, so markers and the clock are looked at often
START_S = 5.0  # a marker from before the EEG that arrives in a recording this young: started in the wrong order


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
    parts: list[str] = field(default_factory=list)  # the files written: out's name, then its split parts
    watch: ChannelWatch | None = None  # the electrodes' health (eeg2arm.realtime.health), as `stream` judges it

    def progress(self, elapsed: float) -> str:
        bad = ",".join(f"{name}({why})" for name, why in self.watch.bad.items()) if self.watch else ""
        return (f"recording {int(elapsed // 60)}:{elapsed % 60:04.1f}  samples={self.samples} "
                f"markers={self.received}  bad={bad or 'none'}")

    def line(self) -> str:
        counts = ", ".join(f"{k} {n}" for k, n in sorted(self.markers.items()))
        late = f"; {self.left_out} marker(s) after the last sample left out" if self.left_out else ""
        split = f" (split in {len(self.parts)} files, keep them together: {', '.join(self.parts)})" \
            if len(self.parts) > 1 else ""
        bad = f"; {self.watch.time.line(self.sfreq)}" if self.watch and self.watch.time.samples else ""
        return (f"wrote {self.out}{split}: {self.n_channels} channels at {self.sfreq:g} Hz, "
                f"{self.samples / self.sfreq:.2f} s ({self.samples} samples), {sum(self.markers.values())} markers "
                f"({counts or 'none'}){late}{bad}; ended by {self.ended_by}")


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


def open_eeg(name: str, timeout: float, units: str) -> tuple:
    # not recovered by liblsl: a recording must not go on from another stream that shares the source_id
    inlet = find_stream(name, timeout, "EEG stream", "check --lsl (an amplifier's LSL app, or "
                                                     "mne_lsl.player.PlayerLSL) and the network", recover=False)
    try:
        if inlet.dtype == "string" or inlet.sfreq <= 0:
            raise UserInputError(f"LSL stream {name!r} is not a signal at a regular rate ({inlet.dtype}, "
                                 f"{inlet.sfreq:g} Hz): give the amplifier's stream to --lsl, the cues to --markers")
        info = stream_info(inlet)
    except BaseException:
        inlet.close_stream()
        raise
    scale = stream_units(inlet, info, units, f"LSL stream {name!r}")  # the stream's units -> SI, as FIF stores them
    for ch in info["chs"]:  # the channels' own entries: Info's lock guards only its top-level keys
        ch["unit_mul"] = 0
    fmt = "double" if inlet.dtype in (np.float64, "float64") else "single"
    return inlet, info, scale, fmt


class Session:
    """A recording in progress: the two inlets, the pieces on disk, the timeline and the counts."""

    def __init__(self, eeg_name: str, markers_name: str, out: Path, timeout: float, units: str = "auto"):
        self.name, self.timeout = eeg_name, timeout
        with contextlib.ExitStack() as opened:  # a failure past the first inlet closes what was opened
            self.eeg, info, self.units, fmt = open_eeg(eeg_name, timeout, units)
            opened.callback(self.eeg.close_stream)
            hint = "start the cue program (its LSL outlet) before recording, or check --markers"
            markers = find_stream(markers_name, timeout, "marker stream", hint, recover=False)
            opened.callback(markers.close_stream)
            self.markers = Markers(markers, markers_name)
            self.watch = StreamWatch(self.eeg, eeg_name, "EEG stream")
            self.recorder = Recorder(out, info, fmt)
            opened.pop_all()
        self.info = info
        self.eeg_picks = mne.pick_types(info, eeg=True)  # the electrodes whose health is watched
        self.summary = RecordSummary(out, len(info["ch_names"]), info["sfreq"],
                                     watch=ChannelWatch(tuple(np.array(info["ch_names"])[self.eeg_picks]),
                                                        info["sfreq"]))
        self.timeline = Timeline(info["sfreq"])
        self.first_stamp: float | None = None
        self.checked_markers = 0  # markers already found to come after the first EEG sample
        self.heard = time.monotonic()

    def run(self, duration: float | None, progress: ProgressLine | None) -> str | None:
        """Record until something ends it (summary.ended_by); the error to report after saving, or None."""
        summary, failure = self.summary, None
        limit = round(duration * summary.sfreq) if duration is not None else None
        started = shown = time.monotonic()
        try:
            while (ended := self.step(limit)) is None:
                if progress is not None and time.monotonic() - shown >= 1.0:
                    shown = time.monotonic()
                    progress(summary, shown - started)
            summary.ended_by, failure = ended
        except KeyboardInterrupt:
            summary.ended_by = "Ctrl-C"
        except Terminated as stop:
            summary.ended_by = stop.signame
        finally:
            self.close()
            self.write(*self.units.flush())  # a recording shorter than the units' judging time
            if progress is not None:
                progress.end()
        return failure

    def step(self, limit: int | None) -> tuple[str, str | None] | None:
        """Take what arrived; once the recording is over, (what ended it, the error to report or None)."""
        summary, sfreq = self.summary, self.summary.sfreq
        try:
            samples, stamps = pull(self.eeg, WAIT_S)  # (n, C), (n,)
        except RuntimeError:  # mne-lsl's LostError: the stream left the network (liblsl notices it late, if at all)
            return self.gone(wait=min(self.timeout, 2.0))
        now = time.monotonic()
        if limit is not None:
            room = limit - summary.samples - self.units.pending
            samples, stamps = samples[:room], stamps[:room]
        back = going_back(self.timeline.last[1], stamps)  # smaller steps back are jitter, evened out by the timeline
        cut = back[0] if back else len(stamps)
        if cut:
            self.heard = now
            self.write(*self.units.push(samples[:cut], stamps[:cut]))
        if back:
            return "the EEG timestamps going back", went_back("EEG stream", self.name, back[1],
                                                               "the recording ends before them")
        early = self.take_markers()
        if early is not None:
            return "a marker stamped before the recording", early
        if limit is not None and summary.samples + self.units.pending >= limit:
            return f"--duration {limit / sfreq:g} s", None
        if now - self.heard > self.timeout:
            return self.gone(wait=0.5)
        if self.watch.changed_after_silence(now - self.heard) is not None:  # an amplifier app restarted otherwise
            return self.gone(wait=0.2)
        return None

    def write(self, volts: np.ndarray, stamps: np.ndarray) -> None:
        """Samples (n, C) in volts and their stamps (n,) onto the timeline and into the recording."""
        if not len(stamps):
            return
        if self.first_stamp is None:
            self.first_stamp = float(stamps[0])
            self.info.set_meas_date(datetime_of(self.first_stamp))
        self.timeline.add(self.summary.samples, stamps)
        self.recorder.add(volts.T)
        self.summary.samples += len(stamps)
        for _ in self.summary.watch.segments(volts.T[self.eeg_picks] * 1e6):  # µV, as `stream` judges them
            pass

    def take_markers(self) -> str | None:
        """Take the markers that arrived; the error that ends the recording when one is stamped before its first
        EEG sample (UserInputError, nothing written, when the recording has just begun: the cues came first)."""
        if self.markers.inlet is not None:
            try:
                self.recorder.markers.extend(self.markers.pull())
                self.summary.received = len(self.recorder.markers)
            except RuntimeError:  # the cue program stopped: the EEG may well go on (ended with Ctrl-C)
                self.markers.inlet.close_stream()
                self.markers.inlet = None
        new = self.recorder.markers[self.checked_markers:]
        if self.first_stamp is None or not new:
            return None
        early = first_early(new, self.first_stamp, self.summary.sfreq)
        if early is None:
            self.checked_markers = len(self.recorder.markers)
            return None
        stamp, text, _ = new[early]
        seconds = self.first_stamp - stamp
        if self.summary.samples < START_S * self.summary.sfreq:
            raise UserInputError(f"a marker ({text!r}) came {seconds:.3f} s before the first EEG sample: start the "
                                 f"EEG stream before the cue program sends cues, then record again (nothing was "
                                 f"written)")
        del self.recorder.markers[self.checked_markers + early:]  # a lab's session is kept up to there
        self.summary.received = len(self.recorder.markers)
        return (f"a marker ({text!r}) came stamped {seconds:.3f} s before the first EEG sample, in the middle of the "
                f"recording (the cue program's clock went back, or it sent old cues again): what came before it is "
                f"saved")

    def gone(self, wait: float) -> tuple[str, str]:
        """Why the EEG stopped: another stream took its name with other settings, it left, or it fell silent."""
        found = self.watch.lookup(wait)  # an app restarting takes a moment to announce its stream again
        changed = self.watch.changed(found)
        if changed is not None:
            return "a change of the EEG stream", self.watch.change(changed, "during the recording: what came before "
                                                                             "is saved; record the new settings into "
                                                                             "another file")
        if not any(other.uid == self.watch.uid for other in found):
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
           echo: Callable[[str], None] = print, progress: ProgressLine | None = None,
           units: str = "auto", saved: Callable[[RecordSummary], None] | None = None) -> RecordSummary:
    """Record until --duration, Ctrl-C, SIGTERM/SIGHUP, silence or a change of the EEG stream; save, call `saved`
    (e.g. the BIDS writer, record_bids.py) and echo the summary. When the stream failed (silence, a change) that
    error is raised after the summary: what came before is saved. `units`: the stream's (auto: eeg2arm.realtime.units)."""
    out = Path(out)
    check_out(out)
    report_unfinished(out.parent)
    with terminate_raises():  # SIGTERM and SIGHUP raise Terminated: Session.run ends on it as on Ctrl-C
        session = Session(eeg_name, markers_name, out, timeout, units)
        try:
            failure = session.run(duration, progress)
            if session.summary.samples == 0:
                raise UserInputError(f"no EEG samples came from {eeg_name!r} ({session.summary.ended_by}): nothing "
                                     f"was written; check that the amplifier is streaming")
            with interruptions_ignored():  # a second signal while saving must not lose the whole session
                session.recorder.finish(session.timeline, session.summary)
        finally:
            session.recorder.discard()  # already gone after finish; here after any failure
    if saved is not None:
        saved(session.summary)
    echo(session.summary.line())
    if failure:
        raise UserInputError(failure)
    return session.summary
