"""Feature frames computed online from a raw EEG stream, with the recipe `eeg2arm prepare` recorded in the config."""
from __future__ import annotations

import numpy as np

from ..config import EEGConfig
from ..errors import UserInputError
from ..features import frame_geometry, n_frames
from ..recipe import CausalChain, Recipe


class OnlineFeatures:
    """Push raw samples (C_in, n) in µV as they arrive (the recipe's input_channels, in order); get the frames
    (C, F, m) that became complete.

    The samples go through the recipe's spatial map and causal filters (state carried), then frame k covers
    samples [k*s, k*s + w) counted from the first pushed sample, exactly as `prepare` frames a recording from its
    first sample, so the online frames equal the offline ones. Only the samples of the next frame are kept; with a
    step longer than the frame, the samples between two frames are counted off as they arrive.
    """

    def __init__(self, recipe: Recipe):
        self.recipe, self.chain = recipe, CausalChain(recipe)
        self.w, self.s, _ = frame_geometry(recipe.sfreq, recipe.frame_window, recipe.frame_step)
        self.pending: dict[str, np.ndarray] = {}  # the recipe's signals (C, n) from the next frame's first sample
        self.skip = 0  # samples still to come before the next frame starts (only when the step exceeds the frame)

    @classmethod
    def for_model(cls, config: EEGConfig) -> "OnlineFeatures":
        """The recipe the model's training data were made with (recorded by `eeg2arm prepare`)."""
        try:
            return cls(Recipe.from_fields(config.to_dict()))
        except UserInputError as e:
            raise UserInputError(f"this model's features cannot be computed online: {e}") from None

    def push(self, samples: np.ndarray) -> np.ndarray:
        """samples (C_in, n) in µV -> the newly complete frames (C, F, m), m >= 0."""
        n_in = len(self.recipe.input_channels)
        if samples.ndim != 2 or samples.shape[0] != n_in:
            raise UserInputError(f"samples must be (C={n_in}, n), got {samples.shape}")
        signals = self.chain.push(samples)  # {kind: (C, n)}: every sample goes through the filters
        skipped, self.skip = min(self.skip, samples.shape[1]), max(0, self.skip - samples.shape[1])
        self.pending = {kind: np.concatenate([self.pending[kind], x[:, skipped:]], axis=1) if kind in self.pending
                        else x[:, skipped:] for kind, x in signals.items()}
        r, held = self.recipe, self.pending["bandpower"].shape[1]
        m = n_frames(held, r.sfreq, r.frame_window, r.frame_step)
        if m == 0:
            return np.zeros((len(r.channels), r.n_features, 0), dtype=np.float32)
        frames = r.frames({kind: x[:, : (m - 1) * self.s + self.w] for kind, x in self.pending.items()})  # (C, F, m)
        self.pending = {kind: x[:, m * self.s:] for kind, x in self.pending.items()}  # the next frame starts here
        self.skip = max(0, m * self.s - held)  # ... or that many samples after the ones held
        return frames

