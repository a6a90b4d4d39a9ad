"""The streaming step graph: one pooled frame + state in, probabilities + next state out (`model.step.onnx`).

    frames (batch, C, F, pool), conv1, conv2, keys, values, seen  ->  logits, probs, next_conv1 ... next_seen

It is eeg2arm.stream.StreamingDecoder exported as is, so a controller with ONNX Runtime alone can stream: start
from zero state (seen = 0), feed each new group of `pool` frames with the state the last call returned. OnnxStep
does exactly that for a Streamer, without torch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from eeg2arm.config import EEGConfig
from eeg2arm.errors import UserInputError
from eeg2arm.streamer import STATE_NAMES

from .metadata import parse_metadata
from .session import make_session

STEP_INPUTS = ("frames", *STATE_NAMES)
STEP_OUTPUTS = ("logits", "probs", *(f"next_{n}" for n in STATE_NAMES))
STEP_SUFFIX = ".step.onnx"


def step_path(onnx_path: str | Path) -> Path:
    """model.onnx -> model.step.onnx, the step graph written beside the batch graph."""
    path = Path(onnx_path)
    return path.with_name(path.name.removesuffix(".onnx") + STEP_SUFFIX)


def can_stream(config: EEGConfig) -> bool:
    """Whether a model has a step graph: per-window z-scoring or a clip needs the whole window up front."""
    return not config.normalize and config.clip_length is None and config.context is not None


class OnnxStep:
    """The step graph in ONNX Runtime behind the Streamer's step interface: numpy in, numpy out, one stream."""

    def __init__(self, model: str | Path | bytes, device: str = "auto"):
        self.session = make_session(model, device)
        source = "the exported step graph" if isinstance(model, bytes) else model
        self.config, self.meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, source)
        inputs = {i.name: i for i in self.session.get_inputs()}
        if tuple(inputs) != STEP_INPUTS:
            raise UserInputError(f"{source} is not an eeg2arm step graph (inputs {list(inputs)}): export it again")
        self._state_shapes = {n: [1 if isinstance(d, str) else d for d in inputs[n].shape] for n in STATE_NAMES}

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def initial_state(self) -> tuple[np.ndarray, ...]:
        """Zero state for one stream: nothing seen yet."""
        return tuple(np.zeros(self._state_shapes[n], dtype=np.int64 if n == "seen" else np.float32)
                     for n in STATE_NAMES)

    def __call__(self, group: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple]:
        """group (1, C, F, pool) -> probs (K,) and the next state."""
        _, probs, *next_state = self.session.run(None, {"frames": group, **dict(zip(STATE_NAMES, state))})
        return probs[0], tuple(next_state)
