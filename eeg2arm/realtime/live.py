"""`eeg2arm stream`: raw EEG chunks -> gaps bridged -> bad electrodes replaced -> online features -> a streaming
decoder -> decisions, with latency.

The decoder is anything with `config`, `push(frames (C, F, n)) -> list[StepResult]` and `reset()`: a Streamer over
a checkpoint (TorchStep) or an ONNX step graph (OnnxStep), or serving.client.RemoteStreamer for a running server.
Every decided frame goes to the sinks (outlet.py: an LSL outlet, JSON lines) with the LSL timestamp of the last
EEG sample it needs, the channels bad at that sample and whether a gap restarted the decoder just before it; each
change of the smoothed decision, of the bad channels and each gap is echoed as one line.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..atomic import Terminated, terminate_raises
from ..config import EEGConfig
from ..errors import UserInputError
from .gaps import GapBridge
from .health import BadTime, ElectrodeRepair, filter_shares, filter_warning
from .online import OnlineFeatures, model_recipe
from .smoothing import Hysteresis
from .sources import Chunk
from .streamer import StepResult, Streamer


class Decoder(Protocol):
    config: EEGConfig

    def push(self, frames: np.ndarray) -> list[StepResult]: ...

    def reset(self) -> None: ...


@dataclass
class StreamSummary:
    feature_frames: int = 0  # band-power frames computed (frame_step apart)
    decisions: int = 0  # decisions sent, one per cnn_time_pool feature frames (numbered `#K` / "index" from 0)
    switches: int = 0  # changes of the smoothed decision (undecided counts as a state)
    held: int = 0  # decisions that held a class (not undecided): their share says whether --enter suits the model
    gaps: int = 0  # gaps too long to bridge: the filters and the decoder started again after each
    latencies_ms: list[float] = field(default_factory=list)  # chunk in -> its decisions out
    stopped_by: str | None = None  # "Ctrl-C", "SIGTERM" or "SIGHUP": stopped from outside
    bad: BadTime = field(default_factory=BadTime)  # how long each channel was bad
    sfreq: float = 1.0
    align_s: float = 0.0  # s of signal the subject's alignment is estimated from (0: none estimated)
    aligned: bool = False  # ... and it was
    unsent: int = 0  # decisions on the signal held for the alignment: decided to carry the decoder's state, not sent

    def line(self) -> str:
        p50, p99 = (np.percentile(self.latencies_ms, [50, 99]) if self.latencies_ms else (float("nan"),) * 2)
        bad = f"; {self.bad.line(self.sfreq)}" if self.bad.samples else ""
        unsent = f"; {self.unsent} decisions on the alignment's {self.align_s:g} s not sent" if self.unsent else ""
        held = self.held / self.decisions if self.decisions else float("nan")
        return (f"feature_frames={self.feature_frames} decisions={self.decisions} switches={self.switches} "
                f"held={held:.2f} gaps={self.gaps} latency_ms p50={p50:.2f} p99={p99:.2f}{unsent}{bad}")


@dataclass(frozen=True)
class Decided:
    """One decided (pooled) frame, as the sinks receive it."""

    result: StepResult
    t: float  # s into the stream at which the frame is complete (the end of its last sample)
    stamp: float  # LSL timestamp (local clock) of that last sample: what the decision is based on
    label: str  # class name of result.decision, "undecided" for Hysteresis.UNDECIDED
    index: int  # the decision's number in the stream, from 0 (a gap restarts the decoder, not this count)
    bad_channels: tuple[str, ...] = ()  # the channels replaced at that sample (eeg2arm.realtime.health)
    bad_changed: bool = False  # they differ from the previous decided frame's
    gap: bool = False  # the first decision after a gap that restarted the filters and the decoder
    # the last second of raw µV (C_in, n) as it came (NaN kept) when the frame was decided, for a display's signal
    # health (eeg2arm.realtime.view, on another thread: health.py replaces this array, never writes into it)
    recent: np.ndarray | None = field(default=None, repr=False, compare=False)


class Sink(Protocol):
    def send(self, decided: Decided, changed: bool) -> None: ...


def label_of(decision: int, class_names: tuple[str, ...] | None) -> str:
    if decision == Hysteresis.UNDECIDED:
        return "undecided"
    return class_names[decision] if class_names else str(decision)


class FrameStamps:
    """Where each feature frame ends: one past its last sample (counted from the first) and that sample's stamp.

    Frame k covers samples [k*s, k*s + w) from the first sample, as the online features frame the stream (w, s:
    their frame length and step in samples); only the stamps of samples a later frame can still end on are kept.
    """

    def __init__(self, w: int, s: int, sfreq: float):
        self.w, self.s, self.sfreq = w, s, sfreq
        self.stamps, self.first, self.frames = np.zeros(0), 0, 0  # stamps of samples first, first + 1, ...

    def push(self, stamps: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The stamps (n,) of a chunk whose samples completed m frames -> their ends (m,) in samples, end stamps
        (m,)."""
        self.stamps = np.concatenate([self.stamps, stamps])
        ends = np.arange(self.frames, self.frames + m) * self.s + self.w  # (m,) one past each frame's last sample
        out = self.stamps[ends - 1 - self.first]
        self.frames += m
        drop = min(self.frames * self.s - self.first, len(self.stamps))  # the next frame starts at frames * s
        self.stamps, self.first = self.stamps[drop:], self.first + drop
        return ends, out


def bad_line(t: float, bad: dict[str, str]) -> str:
    listed = ", ".join(f"{name} ({why})" for name, why in bad.items())
    return f"[t={t:.2f}s] bad channels: {listed or 'none'}" + (" (replaced from the others)" if bad else "")


def describe(result: StepResult, index: int, t: float, class_names: tuple[str, ...] | None) -> str:
    """One printed line for a decision change; `#index` numbers the decisions (the summary's decisions= counts them)."""
    if result.decision == Hysteresis.UNDECIDED:
        return f"[t={t:.2f}s #{index}] decision=undecided"
    label = f" label={class_names[result.decision]}" if class_names else ""
    return (f"[t={t:.2f}s #{index}] decision={result.decision}{label} "
            f"conf={result.probs[result.decision]:.4f}")


DEFAULT_ALIGN_S = 60.0  # s of a live stream a subject's alignment is estimated from, when none is given


def open_features(config: EEGConfig, align_from: str | Path | None = None,
                  align_seconds: float | None = None) -> OnlineFeatures:
    """The model's recipe online; a recipe that aligns each subject gets the subject's alignment from a meta.json
    (`--align-from`) or estimates it from the stream's first `align_seconds` (default DEFAULT_ALIGN_S)."""
    if config.align is None:
        if align_from is not None:
            raise UserInputError("this model's recipe does not align subjects: drop --align-from")
        return OnlineFeatures.for_model(config, None, align_seconds)  # refuses --align-seconds
    if align_from is not None:
        if align_seconds is not None:
            raise UserInputError("give --align-from (a stored alignment) or --align-seconds (estimate it), not both")
        from ..fitting import load_alignment

        recipe = model_recipe(config)
        return OnlineFeatures(recipe, load_alignment(align_from, recipe))
    return OnlineFeatures.for_model(config, align_seconds=align_seconds or DEFAULT_ALIGN_S)


class StreamRun:
    """One `eeg2arm stream` pass: the stages, their state, and what a gap restarts (see run_stream)."""

    def __init__(self, decoder: Decoder, online: OnlineFeatures, echo: Callable[[str], None], sinks: list[Sink],
                 summary: StreamSummary):
        self.decoder, self.online, self.echo, self.sinks, self.summary = decoder, online, echo, sinks, summary
        self.config = config = decoder.config
        self.bridge = GapBridge(config.sfreq)
        self.repair = ElectrodeRepair(online.recipe.input_channels, config.sfreq, online.recipe.montage)
        summary.bad, summary.sfreq = self.repair.time, config.sfreq
        self.lost_s = 0.0  # s of signal lost in gaps, so that t stays the stream's time
        self.restart_at = 0  # the repair's sample count where the features (and clock) last started
        self.clock = FrameStamps(online.w, online.s, config.sfreq)
        self.fed: deque[tuple[int, float]] = deque()  # (end sample, end stamp) of frames given, not yet decided
        self.decision, self.bad, self.after_gap = Hysteresis.UNDECIDED, (), False
        self.shares: dict[str, float] | None = None  # learned filters' weight per channel ({}: none learned)

    def seconds(self, sample: int) -> float:
        return sample / self.config.sfreq + self.lost_s

    def restart(self, gap: float) -> None:
        """After a gap too long to bridge: the filters, the features' clock and the decoder start again."""
        self.lost_s += gap
        self.summary.gaps += 1
        self.online, self.restart_at = self.online.restarted(), self.repair.seen
        self.clock, self.fed = FrameStamps(self.online.w, self.online.s, self.config.sfreq), deque()
        self.decoder.reset()
        self.repair.reset()
        self.decision, self.after_gap = Hysteresis.UNDECIDED, True
        waits = f"; the alignment waits for {self.summary.align_s:g} s of signal again" if self.online.aligning else ""
        self.echo(f"[t={self.seconds(self.restart_at):.2f}s] gap: {gap:.2f} s of signal lost: the filters and the "
                  f"decoder start again{waits}")

    def push(self, piece: Chunk) -> list[StepResult]:
        """One piece of signal -> the decoder's results on the frames it completes, every one sent to the sinks but
        those on the signal held for the subject's alignment (summary.unsent)."""
        if piece.gap:
            self.restart(piece.gap)
        known = len(self.repair.changes)
        samples = self.repair.push(piece.samples)  # (C_in, n) finite, bad channels replaced
        for at, bad in self.repair.changes[known:]:
            self.echo(bad_line(self.seconds(at), bad))
            self.warn_filters(bad)
        aligning = self.online.aligning
        if aligning and not self.summary.align_s:
            self.summary.align_s = seconds = self.online.align_wait_s
            self.echo(f"aligning: the subject's alignment is estimated from the first {seconds:g} s of signal; "
                      f"decisions follow")
        frames = self.online.push(samples)  # (C, F, m)
        held = aligning and not self.online.aligning  # frames of the held signal: as old as the alignment's wait
        if held:
            self.summary.aligned = True
            self.echo(f"aligned on the first {self.summary.align_s:g} s of signal; its decisions carry the decoder's "
                      f"state and are not sent (up to {self.summary.align_s:g} s old): decisions follow")
            self.warn_filters(self.repair.bad)  # held until the filters' weights on the raw input were known
        ends, end_stamps = self.clock.push(piece.stamps, frames.shape[-1])  # (m,), (m,)
        self.summary.feature_frames += frames.shape[-1]
        self.fed.extend(zip(ends.tolist(), end_stamps.tolist()))
        results = self.decoder.push(frames) if frames.shape[-1] else []
        for result in results:
            for _ in range(self.config.cnn_time_pool):  # a pooled frame ends where its last input frame ends
                end, stamp = self.fed.popleft()
            if held:  # an arm must not replay a minute of old moves at once
                self.summary.unsent += 1
            else:
                self.send(result, self.restart_at + end, stamp)
        return results

    def warn_filters(self, bad: dict[str, str]) -> None:
        """A learned-filter recipe's warning for bad channels (health.filter_warning), once their alignment is known."""
        if not bad or self.online.aligning:
            return
        if self.shares is None:  # the alignment stays through gaps: computed once
            self.shares = filter_shares(self.online.recipe, self.online.alignment) or {}
        if self.shares:
            self.echo(filter_warning(self.shares, bad))

    def send(self, result: StepResult, end: int, stamp: float) -> None:
        """One decided frame (its last sample `end` - 1 from the stream's first) to the sinks, a line on a change."""
        t, bad, index = self.seconds(end), tuple(self.repair.bad_at(end - 1)), self.summary.decisions
        changed = result.decision != self.decision
        decided = Decided(result, t, float(stamp), label_of(result.decision, self.config.class_names), index, bad,
                          bad != self.bad, self.after_gap, self.repair.recent)
        self.bad, self.after_gap = bad, False
        for sink in self.sinks:
            sink.send(decided, changed)
        self.summary.decisions += 1  # counted once sent: a stop in between leaves the count and the sinks equal
        self.summary.held += result.decision != Hysteresis.UNDECIDED
        if changed:
            self.summary.switches += 1
            self.decision = result.decision
            self.echo(describe(result, index, t, self.config.class_names))


def run_stream(chunks: Iterable[Chunk], decoder: Decoder, echo: Callable[[str], None] = print,
               duration: float | None = None, summary: StreamSummary | None = None,
               sinks: Iterable[Sink] = (), online: OnlineFeatures | None = None) -> StreamSummary:
    """Feed raw chunks (C, n) in µV with their stamps until they end, `duration` s of signal have passed or
    Ctrl-C; send every decided frame to the sinks and echo each decision change.

    Before the features, short gaps are bridged and longer ones restart the decoder (eeg2arm.realtime.gaps), and
    bad electrodes are replaced (eeg2arm.realtime.health), so that every frame is decided. `summary` is filled as
    the stream goes, so a caller still has the counts when a source fails midway. `online` computes the features
    (default: the model's recipe, open_features).
    """
    summary = summary or StreamSummary()
    run = StreamRun(decoder, online or OnlineFeatures.for_model(decoder.config), echo, list(sinks), summary)
    try:
        with terminate_raises():  # a service manager's SIGTERM (or a closed terminal) ends it as Ctrl-C does
            for chunk in chunks:
                arrived, sent = time.perf_counter(), summary.decisions
                for piece in run.bridge.push(chunk):
                    run.push(piece)
                if summary.decisions > sent:  # chunk in -> its decisions out
                    summary.latencies_ms.append((time.perf_counter() - arrived) * 1e3)
                if duration is not None and summary.feature_frames * decoder.config.frame_step >= duration:
                    break
    except KeyboardInterrupt:  # the way a live stream is stopped: still print the summary
        summary.stopped_by = "Ctrl-C"
        echo("interrupted")
    except Terminated as stop:
        summary.stopped_by = stop.signame
        echo(f"stopped by {stop.signame}")
    return summary


def open_decoder(ckpt: str | None, onnx: str | None, url: str | None, hysteresis: Hysteresis,
                 device: str = "auto") -> Decoder:
    """A streaming decoder from exactly one of: a checkpoint, an exported step graph (or the model.onnx beside
    it), a running server's URL."""
    if sum(x is not None for x in (ckpt, onnx, url)) != 1:
        raise UserInputError("give exactly one of --ckpt (checkpoint), --onnx (export) or --url (running server)")
    if url is not None:
        from serving.client import RemoteStreamer

        return RemoteStreamer(url, hysteresis.enter, hysteresis.exit, hysteresis.min_frames)
    if onnx is not None:
        from export.metadata import STEP_SUFFIX
        from export.step import OnnxStep, step_beside

        if not Path(onnx).is_file() or Path(onnx).suffix != ".onnx":
            raise UserInputError(f"--onnx {onnx} is not an ONNX file: pass the model.onnx (or model.step.onnx) "
                                 f"that `eeg2arm export` wrote")
        step = OnnxStep(onnx, device) if str(onnx).endswith(STEP_SUFFIX) else step_beside(onnx, device)
        if step is None:
            raise UserInputError(f"no step graph beside {onnx}: export the checkpoint again with `eeg2arm export` "
                                 f"(without --no-stream) and pass its model.onnx or model.step.onnx")
        return Streamer(step, hysteresis)
    import torch

    from ..checkpoint import load_model_from_checkpoint
    from ..device import resolve_device

    # One pooled frame is too little work to share between threads, and waking a pool that slept since the last
    # frame costs more than the step (at real speed on 2 cores: latency p50 11.6 ms on 2 threads, 3.4 ms on 1).
    torch.set_num_threads(1)
    model, _ = load_model_from_checkpoint(ckpt, resolve_device(device))
    return Streamer.from_model(model, hysteresis)
