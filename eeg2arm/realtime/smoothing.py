"""Hysteresis: per-frame probabilities -> a steady decision (numpy only, so ONNX-only clients can use it).

Bad settings raise UserInputError (the CLI's one line, the service's 400) saying the valid ranges."""
from __future__ import annotations

import numpy as np

from ..errors import UserInputError


class Hysteresis:
    """Smooth per-frame class probabilities into a steady decision, so the arm does not jitter.

    A class is *entered* once its probability is >= `enter` for `min_frames` consecutive frames. The decision is
    then *held* while its probability stays >= `exit` (choose exit <= enter); below that it is released to
    UNDECIDED (-1) until a class enters again.

        smoother = Hysteresis(enter=0.7, exit=0.5, min_frames=3)
        decisions = [smoother.update(p) for p in probs]  # probs: (T, K)
    """

    UNDECIDED = -1

    def __init__(self, enter: float = 0.7, exit: float = 0.5, min_frames: int = 3):
        if not 0.0 <= exit <= enter <= 1.0:
            raise UserInputError(f"Hysteresis needs 0 <= exit <= enter <= 1, got enter={enter:g}, exit={exit:g}: "
                                 f"give an exit probability (--exit, or the exit field) at most the enter one "
                                 f"(--enter)")
        if min_frames < 1:
            raise UserInputError(f"Hysteresis needs min_frames >= 1, got {min_frames}: choose 1 or more frames "
                                 f"(--min-frames, or the min_frames field)")
        self.enter, self.exit, self.min_frames = enter, exit, min_frames
        self.reset()

    def reset(self) -> None:
        self.decision = self.UNDECIDED
        self._candidate = self.UNDECIDED
        self._streak = 0

    def update(self, probs: np.ndarray) -> int:
        """Feed one frame's probabilities (K,); returns the current decision (a class index or UNDECIDED)."""
        p = np.asarray(probs, dtype=np.float64)
        if self.decision != self.UNDECIDED and p[self.decision] < self.exit:
            self.decision = self.UNDECIDED
        best = int(p.argmax())
        if best != self.decision and p[best] >= self.enter:
            self._streak = self._streak + 1 if best == self._candidate else 1
            self._candidate = best
            if self._streak >= self.min_frames:
                self.decision, self._candidate, self._streak = best, self.UNDECIDED, 0
        else:
            self._candidate, self._streak = self.UNDECIDED, 0
        return self.decision

    def run(self, probs_seq: np.ndarray) -> list[int]:
        """Decisions for a whole sequence (T, K), starting from a reset state."""
        self.reset()
        return [self.update(p) for p in probs_seq]
