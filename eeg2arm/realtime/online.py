"""Band-power frames computed online from a raw EEG stream, with the same recipe as `eeg2arm prepare`."""
from __future__ import annotations

import numpy as np

from ..config import EEGConfig
from ..errors import UserInputError
from ..features import band_power_frames, frame_geometry, n_frames


class OnlineBandPower:
    """Push raw samples (C, n) in µV as they arrive; get the frames (C, F, m) that became complete.

    Frame k covers samples [k*s, k*s + w) counted from the first pushed sample, exactly as
    `band_power_frames` frames a whole recording, so the online frames equal the offline ones.
    """

    def __init__(self, sfreq: float, bands: tuple[tuple[str, float, float], ...], frame_window: float,
                 frame_step: float, n_channels: int):
        self.sfreq, self.bands = sfreq, bands
        self.frame_window, self.frame_step = frame_window, frame_step
        self.w, self.s, _ = frame_geometry(sfreq, frame_window, frame_step)
        self.buffer = np.zeros((n_channels, 0))

    @classmethod
    def for_model(cls, config: EEGConfig) -> "OnlineBandPower":
        """The recipe the model's training data were made with (recorded by `eeg2arm prepare`)."""
        needed = ("channel_names", "band_names", "band_edges", "sfreq", "frame_window", "frame_step")
        missing = [n for n in needed if getattr(config, n) is None]
        if missing:
            raise UserInputError(f"the model does not record how its band power was made ({', '.join(missing)}): "
                                 f"train it on data from `eeg2arm prepare` (its meta.json) to stream raw EEG")
        bands = tuple((n, lo, hi) for n, (lo, hi) in zip(config.band_names, config.band_edges))
        return cls(config.sfreq, bands, config.frame_window, config.frame_step, len(config.channel_names))

    def push(self, samples: np.ndarray) -> np.ndarray:
        """samples (C, n) in µV -> the newly complete frames (C, F, m), m >= 0."""
        if samples.ndim != 2 or samples.shape[0] != self.buffer.shape[0]:
            raise UserInputError(f"samples must be (C={self.buffer.shape[0]}, n), got {samples.shape}")
        self.buffer = np.concatenate([self.buffer, samples], axis=1)
        m = n_frames(self.buffer.shape[1], self.sfreq, self.frame_window, self.frame_step)
        if m == 0:
            return np.zeros((self.buffer.shape[0], len(self.bands), 0), dtype=np.float32)
        frames = band_power_frames(self.buffer[:, : (m - 1) * self.s + self.w], self.sfreq, self.bands,
                                   self.frame_window, self.frame_step)  # (C, F, m)
        self.buffer = self.buffer[:, m * self.s:]  # the next frame starts here
        return frames
