"""`eeg2arm stream`: raw EEG chunks -> online band power -> a streaming decoder -> decisions, with latency.

The decoder is anything with `config` and `push(frames (C, F, n)) -> list[StepResult]`: a Streamer over a
checkpoint (TorchStep) or an ONNX step graph (OnnxStep), or serving.client.RemoteStreamer for a running server.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import EEGConfig
from ..errors import UserInputError
from .online import OnlineFeatures
from .smoothing import Hysteresis
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

    def line(self) -> str:
        p50, p99 = (np.percentile(self.latencies_ms, [50, 99]) if self.latencies_ms else (float("nan"),) * 2)
        return (f"frames={self.frames} decisions={self.decisions} switches={self.switches} "
                f"dropped={self.dropped} latency_ms p50={p50:.2f} p99={p99:.2f}")


def signal_time(frame: int, config: EEGConfig) -> float:
    """Seconds into the stream at which pooled frame `frame` is complete (the end of its last band-power frame)."""
    last = (frame + 1) * config.cnn_time_pool - 1
    return last * config.frame_step + config.frame_window


def describe(result: StepResult, t: float, class_names: tuple[str, ...] | None) -> str:
    """One printed line for a decision change."""
    if result.decision == Hysteresis.UNDECIDED:
        return f"[t={t:.2f}s frame {result.frame}] decision=undecided"
    label = f" label={class_names[result.decision]}" if class_names else ""
    return (f"[t={t:.2f}s frame {result.frame}] decision={result.decision}{label} "
            f"conf={result.probs[result.decision]:.4f}")


def run_stream(chunks: Iterable[np.ndarray], decoder: Decoder, echo: Callable[[str], None] = print,
               duration: float | None = None, summary: StreamSummary | None = None) -> StreamSummary:
    """Feed raw chunks (C, n) in µV until they end, `duration` s of signal have passed or Ctrl-C; echo each
    decision change. Frames computed from NaN/Inf samples are dropped and counted, the stream goes on.

    `summary` is filled as the stream goes, so a caller still has the counts when a source fails midway.
    """
    config = decoder.config
    online = OnlineFeatures.for_model(config)
    summary, decision = summary or StreamSummary(), Hysteresis.UNDECIDED
    try:
        for chunk in chunks:
            arrived = time.perf_counter()
            frames = online.push(chunk)  # (C, F, m)
            finite = np.isfinite(frames).all(axis=(0, 1))  # (m,)
            summary.frames += frames.shape[-1]
            summary.dropped += int((~finite).sum())
            results = decoder.push(frames[..., finite]) if finite.any() else []
            if results:
                summary.latencies_ms.append((time.perf_counter() - arrived) * 1e3)
            for result in results:
                summary.decisions += 1
                if result.decision != decision:
                    summary.switches += 1
                    decision = result.decision
                    echo(describe(result, signal_time(result.frame, config), config.class_names))
            if duration is not None and summary.frames * config.frame_step >= duration:
                break
    except KeyboardInterrupt:  # the way a live stream is stopped: still print the summary
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
        from export.step import STEP_SUFFIX, OnnxStep, step_beside

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
