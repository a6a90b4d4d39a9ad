"""The streaming step graph: one pooled frame + state in, probabilities + next state out (`model.step.onnx`).

    frames (batch, C, F, pool), conv1, conv2, keys, values, seen  ->  logits, probs, next_conv1 ... next_seen

It is eeg2arm.realtime.decoder.streaming_decoder(model) exported as is, so a controller with ONNX Runtime alone
can stream: start from zero state (seen = 0), feed each new group of `pool` frames with the state the last call returned. OnnxStep
does exactly that for a Streamer, without torch. Several streams can share one call (the batch axis), but `seen`
is one scalar for all of them: batched streams must start together and step in lockstep; streams that start at
different times each get their own state (as the service's sessions do).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from eeg2arm.errors import UserInputError
from eeg2arm.realtime.streamer import STATE_NAMES

from .metadata import STEP_SUFFIX, read_onnx_metadata
from .session import OnnxModel

STEP_INPUTS = ("frames", *STATE_NAMES)
STEP_OUTPUTS = ("logits", "probs", *(f"next_{n}" for n in STATE_NAMES))


def step_path(onnx_path: str | Path) -> Path:
    """model.onnx -> model.step.onnx, the step graph written beside the batch graph."""
    path = Path(onnx_path)
    return path.with_name(path.name.removesuffix(".onnx") + STEP_SUFFIX)


class OnnxStep(OnnxModel):
    """The step graph in ONNX Runtime behind the Streamer's step interface: numpy in, numpy out, one stream."""

    def __init__(self, model: str | Path | bytes, device: str = "auto"):
        super().__init__(model, device)
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        if tuple(inputs) != STEP_INPUTS:
            raise UserInputError(f"{self.source} is not an eeg2arm step graph (inputs {list(inputs)}): export "
                                 f"it again")
        self._state_shapes = {n: inputs[n] for n in STATE_NAMES}  # "batch" where the batch axis is

    def initial_state(self, batch: int = 1) -> tuple[np.ndarray, ...]:
        """Zero state for `batch` streams: nothing seen yet."""
        return tuple(np.zeros([batch if isinstance(d, str) else d for d in self._state_shapes[n]],
                              dtype=np.int64 if n == "seen" else np.float32) for n in STATE_NAMES)

    def run(self, groups: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, tuple]:
        """groups (B, C, F, pool) for B streams in lockstep -> logits (B, K), probs (B, K) and the next state."""
        logits, probs, *next_state = self.session.run(None, {"frames": groups, **dict(zip(STATE_NAMES, state))})
        return logits, probs, tuple(next_state)

    def __call__(self, group: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple]:
        """group (1, C, F, pool) -> probs (K,) and the next state."""
        _, probs, next_state = self.run(group, state)
        return probs[0], next_state


def step_beside(onnx_path: str | Path, device: str = "auto") -> OnnxStep | None:
    """The step graph written beside `onnx_path` by the same export, or None when there is none.

    UserInputError when the file there came from another export (its export_id differs): it would stream with
    other weights than the batch graph answers with.
    """
    path = step_path(onnx_path)
    if not path.is_file():
        return None
    _, batch_meta = read_onnx_metadata(onnx_path)
    step = OnnxStep(path, device)
    if step.meta.get("export_id") != batch_meta.get("export_id"):
        raise UserInputError(f"{path} comes from another export than {onnx_path}: export the model again "
                             f"(it writes both files)")
    return step
