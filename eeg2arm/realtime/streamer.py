"""Streamer: band-power frames in as they arrive, per-frame probabilities and smoothed decisions out.

numpy only: the step backend does the math, a TorchStep (eeg2arm.realtime.decoder) or an OnnxStep (export.step), so an
ONNX-only client such as the service never imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..config import EEGConfig
from ..errors import UserInputError
from .smoothing import Hysteresis

if TYPE_CHECKING:
    from ..ensemble import EEGEnsemble
    from ..model import EEGModel

STATE_NAMES = ("conv1", "conv2", "keys", "values", "seen")  # a step backend's state, in order (eeg2arm.realtime.decoder)


class StepBackend(Protocol):
    """One pooled frame per call: group (1, C, F, pool) + state -> probs (K,) and the next state."""

    config: EEGConfig

    def initial_state(self) -> Any: ...

    def __call__(self, group: np.ndarray, state: Any) -> tuple[np.ndarray, Any]: ...


@dataclass(frozen=True)
class StepResult:
    frame: int  # index of the pooled frame (the same index as forward_seq's output)
    probs: np.ndarray  # (K,)
    pred: int  # argmax of probs: the raw decision
    decision: int  # the Hysteresis decision (a class, or Hysteresis.UNDECIDED)


class Streamer:
    """Feed band-power frames as they arrive, one (C, F) or several (C, F, n) at a time; get decisions back.

    Frames are buffered until `cnn_time_pool` are there; each complete group gives one StepResult. `step` is a
    StepBackend: a TorchStep (`Streamer.from_model(model)`) or an OnnxStep (export.step).
    """

    def __init__(self, step: StepBackend, hysteresis: Hysteresis | None = None):
        self.step = step
        self.hysteresis = hysteresis or Hysteresis()
        self.config = c = step.config
        self.frame_shape, self.pool = (c.n_electrodes, c.n_bands), c.cnn_time_pool
        self.reset()

    @classmethod
    def from_model(cls, model: "EEGModel | EEGEnsemble", hysteresis: Hysteresis | None = None) -> "Streamer":
        from .decoder import TorchStep

        return cls(TorchStep(model), hysteresis)

    def reset(self) -> None:
        self.state = self.step.initial_state()
        self.pending = np.zeros((*self.frame_shape, 0), dtype=np.float32)
        self.frames_done = 0
        self.latest: StepResult | None = None  # the newest decision: what the arm should be doing now
        self.hysteresis.reset()

    def push(self, frames: np.ndarray) -> list[StepResult]:
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim == 2:
            frames = frames[..., None]
        if frames.ndim != 3 or frames.shape[:2] != self.frame_shape:
            raise UserInputError(f"a frame must be (C, F) = {self.frame_shape} or (C, F, n), got {frames.shape}")
        if not np.isfinite(frames).all():
            raise UserInputError("frame contains NaN/Inf values: drop or repair it; the stream state is unchanged")
        pending, state, all_probs = np.concatenate([self.pending, frames], axis=-1), self.state, []
        while pending.shape[-1] >= self.pool:  # on copies: the session changes only once every step is sound
            group, pending = pending[None, ..., :self.pool], pending[..., self.pool:]
            probs, state = self.step(np.ascontiguousarray(group), state)
            all_probs.append(probs)
        if not all(np.isfinite(p).all() for p in all_probs):
            raise UserInputError("frames drive the model to NaN/Inf outputs (values far beyond the band power it was "
                                 "trained on): send frames in that range; the stream state is unchanged")
        self.pending, self.state, results = pending, state, []
        for probs in all_probs:
            results.append(StepResult(self.frames_done, probs, int(probs.argmax()), self.hysteresis.update(probs)))
            self.frames_done += 1
        if results:
            self.latest = results[-1]
        return results
