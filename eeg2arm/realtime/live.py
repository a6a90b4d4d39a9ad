"""`eeg2arm stream`: raw EEG chunks -> online band power -> a streaming decoder -> decisions, with latency.

The decoder is anything with `config` and `push(frames (C, F, n)) -> list[StepResult]`: a Streamer over a
checkpoint (TorchStep) or an ONNX step graph (OnnxStep), or serving.client.RemoteStreamer for a running server.
Every decided frame goes to the sinks (outlet.py: an LSL outlet, JSON lines) with the LSL timestamp of the last
EEG sample it needs; each change of the smoothed decision is echoed as one line.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import EEGConfig
from ..errors import UserInputError
from .online import OnlineFeatures, model_recipe
from .smoothing import Hysteresis
from .sources import Chunk
from .streamer import StepResult, Streamer


class Decoder(Protocol):
    config: EEGConfig

    def push(self, frames: np.ndarray) -> list[StepResult]: ...


@dataclass
class StreamSummary:
    frames: int = 0  # band-power frames computed
    decisions: int = 0  # pooled frames decided (one StepResult each)
    switches: int = 0  # changes of the smoothed decision (undecided counts as a state)
    dropped: int = 0  # frames left out because their samples held NaN/Inf (an amplifier dropout)
    latencies_ms: list[float] = field(default_factory=list)  # chunk in -> its decisions out
    interrupted: bool = False  # stopped by Ctrl-C

    def line(self) -> str:
        p50, p99 = (np.percentile(self.latencies_ms, [50, 99]) if self.latencies_ms else (float("nan"),) * 2)
        return (f"frames={self.frames} decisions={self.decisions} switches={self.switches} "
                f"dropped={self.dropped} latency_ms p50={p50:.2f} p99={p99:.2f}")


@dataclass(frozen=True)
class Decided:
    """One decided (pooled) frame, as the sinks receive it."""

    result: StepResult
    t: float  # s into the stream at which the frame is complete (the end of its last sample)
    stamp: float  # LSL timestamp (local clock) of that last sample: what the decision is based on
    label: str  # class name of result.decision, "undecided" for Hysteresis.UNDECIDED


class Sink(Protocol):
    def send(self, decided: Decided, changed: bool) -> None: ...


def label_of(decision: int, class_names: tuple[str, ...] | None) -> str:
    if decision == Hysteresis.UNDECIDED:
        return "undecided"
    return class_names[decision] if class_names else str(decision)


class FrameStamps:
    """Where each feature frame ends: its stream time and the LSL timestamp of its last sample.

    Frame k covers samples [k*s, k*s + w) from the first sample, as the online features frame the stream (w, s:
    their frame length and step in samples); only the stamps of samples a later frame can still end on are kept.
    """

    def __init__(self, w: int, s: int, sfreq: float):
        self.w, self.s, self.sfreq = w, s, sfreq
        self.stamps, self.first, self.frames = np.zeros(0), 0, 0  # stamps of samples first, first + 1, ...

    def push(self, stamps: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The stamps (n,) of a chunk whose samples completed m frames -> their end times (m,), end stamps (m,)."""
        self.stamps = np.concatenate([self.stamps, stamps])
        ends = np.arange(self.frames, self.frames + m) * self.s + self.w  # (m,) one past each frame's last sample
        out = self.stamps[ends - 1 - self.first]
        self.frames += m
        drop = min(self.frames * self.s - self.first, len(self.stamps))  # the next frame starts at frames * s
        self.stamps, self.first = self.stamps[drop:], self.first + drop
        return ends / self.sfreq, out


def describe(result: StepResult, t: float, class_names: tuple[str, ...] | None) -> str:
    """One printed line for a decision change."""
    if result.decision == Hysteresis.UNDECIDED:
        return f"[t={t:.2f}s frame {result.frame}] decision=undecided"
    label = f" label={class_names[result.decision]}" if class_names else ""
    return (f"[t={t:.2f}s frame {result.frame}] decision={result.decision}{label} "
            f"conf={result.probs[result.decision]:.4f}")


DEFAULT_ALIGN_S = 60.0  # s of a live stream a subject's alignment is estimated from, when none is given


def open_features(config: EEGConfig, align_from: str | Path | None = None, align_seconds: float | None = None,
                  echo: Callable[[str], None] = print) -> OnlineFeatures:
    """The model's recipe online; a recipe that aligns each subject gets the subject's alignment from a meta.json
    (`--align-from`) or estimates it from the stream's first `align_seconds` (default DEFAULT_ALIGN_S)."""
    if config.align is None:
        return OnlineFeatures.for_model(config, None, align_seconds)  # refuses alignment options
    if align_from is not None:
        if align_seconds is not None:
            raise UserInputError("give --align-from (a stored alignment) or --align-seconds (estimate it), not both")
        from ..fitting import load_alignment

        recipe = model_recipe(config)
        return OnlineFeatures(recipe, load_alignment(align_from, recipe))
    seconds = align_seconds or DEFAULT_ALIGN_S
    echo(f"aligning: the subject's alignment is estimated from the first {seconds:g} s of signal; decisions follow")
    return OnlineFeatures.for_model(config, align_seconds=seconds)


def run_stream(chunks: Iterable[Chunk], decoder: Decoder, echo: Callable[[str], None] = print,
               duration: float | None = None, summary: StreamSummary | None = None,
               sinks: Iterable[Sink] = (), online: OnlineFeatures | None = None) -> StreamSummary:
    """Feed raw chunks (C, n) in µV with their stamps until they end, `duration` s of signal have passed or
    Ctrl-C; send every decided frame to the sinks and echo each decision change. Frames computed from NaN/Inf
    samples are dropped and counted, the stream goes on.

    `summary` is filled as the stream goes, so a caller still has the counts when a source fails midway. `online`
    computes the features (default: the model's recipe, open_features).
    """
    config = decoder.config
    online = online or OnlineFeatures.for_model(config)
    summary, decision = summary or StreamSummary(), Hysteresis.UNDECIDED
    clock, sinks = FrameStamps(online.w, online.s, config.sfreq), list(sinks)
    fed: deque[tuple[float, float]] = deque()  # (end time, end stamp) of frames given to the decoder, not yet decided
    try:
        for samples, stamps in chunks:
            arrived, aligning = time.perf_counter(), online.aligning
            frames = online.push(samples)  # (C, F, m)
            if aligning and not online.aligning:
                echo(f"aligned on the first {online.align_samples / config.sfreq:g} s of signal")
            ends, end_stamps = clock.push(stamps, frames.shape[-1])  # (m,), (m,)
            finite = np.isfinite(frames).all(axis=(0, 1))  # (m,)
            summary.frames += frames.shape[-1]
            summary.dropped += int((~finite).sum())
            fed.extend(zip(ends[finite], end_stamps[finite]))
            results = decoder.push(frames[..., finite]) if finite.any() else []
            for result in results:
                for _ in range(config.cnn_time_pool):  # a pooled frame ends where its last input frame ends
                    t, stamp = fed.popleft()
                summary.decisions += 1
                changed = result.decision != decision
                decided = Decided(result, float(t), float(stamp), label_of(result.decision, config.class_names))
                for sink in sinks:
                    sink.send(decided, changed)
                if changed:
                    summary.switches += 1
                    decision = result.decision
                    echo(describe(result, t, config.class_names))
            if results:
                summary.latencies_ms.append((time.perf_counter() - arrived) * 1e3)
            if duration is not None and summary.frames * config.frame_step >= duration:
                break
    except KeyboardInterrupt:  # the way a live stream is stopped: still print the summary
        summary.interrupted = True
        echo("interrupted")
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
