"""Feature frames computed online from a raw EEG stream, with the recipe `eeg2arm prepare` recorded in the config."""
from __future__ import annotations

import numpy as np

from ..config import EEGConfig
from ..errors import UserInputError
from ..features import frame_geometry, n_frames
from ..recipe import CausalChain, Recipe
from ..spatial import Alignment, SignalMoments


def model_recipe(config: EEGConfig) -> Recipe:
    """The recipe the model's training data were made with (recorded by `eeg2arm prepare`)."""
    try:
        return Recipe.from_fields(config.to_dict())
    except UserInputError as e:
        raise UserInputError(f"this model's features cannot be computed online: {e}") from None


class OnlineFeatures:
    """Push raw samples (C_in, n) in µV as they arrive (the recipe's input_channels, in order); get the frames
    (C, F, m) that became complete.

    The samples go through the recipe's spatial map and causal filters (state carried), then frame k covers
    samples [k*s, k*s + w) counted from the first pushed sample, exactly as `prepare` frames a recording from its
    first sample, so the online frames equal the offline ones. Only the samples of the next frame are kept; with a
    step longer than the frame, the samples between two frames are counted off as they arrive.

    A recipe that aligns each subject (--align) needs the subject's R^-1/2: `align` (e.g. from the meta.json of
    `prepare --like` on the subject's recording), or `align_samples`: the first samples are held until there are
    that many, the alignment is estimated from them as `prepare` estimates it from a whole recording, and they go
    through the chain from the first one (no frames come out before).
    """

    def __init__(self, recipe: Recipe, align: Alignment | None = None, align_samples: int | None = None):
        if recipe.align is not None and align is None and not align_samples:
            raise UserInputError("this model aligns each subject's signal (--align): give the subject's alignment "
                                 "(--align-from) or a time to estimate it from the stream (--align-seconds)")
        if recipe.align is None and (align is not None or align_samples):
            raise UserInputError("this model's recipe does not align subjects: drop --align-from/--align-seconds")
        self.recipe, self.alignment = recipe, align
        self.chain = CausalChain(recipe, align) if recipe.align is None or align is not None else None
        self.align_samples = align_samples or 0
        self.held: list[np.ndarray] = []  # (C_in, n) pieces while the alignment is being estimated
        self.w, self.s, _ = frame_geometry(recipe.sfreq, recipe.frame_window, recipe.frame_step)
        self.pending: dict[str, np.ndarray] = {}  # the recipe's signals (..., n) from the next frame's first sample
        self.skip = 0  # samples still to come before the next frame starts (only when the step exceeds the frame)

    @classmethod
    def for_model(cls, config: EEGConfig, align: Alignment | None = None,
                  align_seconds: float | None = None) -> "OnlineFeatures":
        """The model's recipe (model_recipe), aligned by `align` or on the first `align_seconds` of signal."""
        recipe = model_recipe(config)
        samples = round(align_seconds * recipe.sfreq) if align_seconds else None
        return cls(recipe, align, samples)

    def restarted(self) -> "OnlineFeatures":
        """The same recipe and subject alignment from a clean state (after a gap); still estimating the alignment
        if it was."""
        return OnlineFeatures(self.recipe, self.alignment, None if self.alignment is not None else self.align_samples)

    @property
    def aligning(self) -> bool:
        """Whether the first samples are still being held to estimate the subject's alignment."""
        return self.chain is None

    @property
    def align_wait_s(self) -> float:
        """Seconds of signal held before the alignment (and so the first frame) while aligning, else 0."""
        return self.align_samples / self.recipe.sfreq if self.aligning else 0.0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """samples (C_in, n) in µV -> the newly complete frames (C, F, m), m >= 0."""
        n_in = len(self.recipe.input_channels)
        if samples.ndim != 2 or samples.shape[0] != n_in:
            raise UserInputError(f"samples must be (C={n_in}, n), got {samples.shape}")
        if self.chain is None:
            self.held.append(samples)
            if sum(x.shape[1] for x in self.held) < self.align_samples:
                return self.frames_of({})
            samples, self.held = np.concatenate(self.held, axis=1), []
            moments = SignalMoments(len(self.recipe.channels))
            moments.add(CausalChain(self.recipe).front(samples[:, :self.align_samples]))
            self.alignment = moments.alignment(self.recipe.align, "the stream's first samples")
            self.chain = CausalChain(self.recipe, self.alignment)
        return self.frames_of(self.chain.push(samples))  # every sample goes through the filters

    def frames_of(self, signals: dict[str, np.ndarray]) -> np.ndarray:
        """The frames that the newly filtered signals {kind: (..., n)} complete."""
        r = self.recipe
        n = next(iter(signals.values())).shape[-1] if signals else 0
        skipped, self.skip = min(self.skip, n), max(0, self.skip - n)
        self.pending = {kind: np.concatenate([self.pending[kind], x[..., skipped:]], axis=-1) if kind in self.pending
                        else x[..., skipped:] for kind, x in signals.items()}
        held = next(iter(self.pending.values())).shape[-1] if self.pending else 0
        m = n_frames(held, r.sfreq, r.frame_window, r.frame_step)
        if m == 0:
            return np.zeros((len(r.model_channels), r.n_features, 0), dtype=np.float32)
        frames = r.frames({kind: x[..., : (m - 1) * self.s + self.w] for kind, x in self.pending.items()})
        self.pending = {kind: x[..., m * self.s:] for kind, x in self.pending.items()}  # the next frame starts here
        self.skip = max(0, m * self.s - held)  # ... or that many samples after the ones held
        return frames  # (C, F, m)
