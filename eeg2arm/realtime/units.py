"""The units of a live stream's samples: declared in its description, or judged from their amplitude.

Many amplifier apps (OpenBCI's GUI among them) send microvolts and declare no unit, which liblsl then reads as
volts. With `--units auto` (the default) a declared unit wins; otherwise the first JUDGE_S seconds decide: EEG has a
standard deviation of a few to a few hundred µV, so of the three units the one that puts the median channel's
standard deviation closest to TYPICAL_UV (on a log scale) is taken, and one info line says so. A stream that fits
no unit (flat everywhere, or beyond any amplifier's range) is refused in one line.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from ..errors import UserInputError

log = logging.getLogger("eeg2arm")
UNITS = {"V": 1.0, "mV": 1e-3, "uV": 1e-6}  # volts per unit
UNIT_NAMES = {"V": "volts", "mV": "millivolts", "uV": "microvolts"}
JUDGE_S = 1.0  # seconds of signal the units are judged from
TYPICAL_UV = 20.0  # a typical EEG channel's standard deviation in µV
PLAUSIBLE_UV = (0.05, 20000.0)  # the median channel's standard deviation, µV, of any EEG an amplifier sends


def judge_units(samples: np.ndarray) -> str:
    """The unit of raw samples (C, n) of EEG, judged from the median channel's standard deviation."""
    finite = np.where(np.isfinite(samples), samples, np.nan)
    spread = float(np.nanmedian(np.nanstd(finite, axis=1))) if np.isfinite(finite).any() else 0.0
    unit = min(UNITS, key=lambda u: abs(math.log10(max(spread, 1e-30) * UNITS[u] * 1e6 / TYPICAL_UV)))
    in_uv = spread * UNITS[unit] * 1e6
    if not PLAUSIBLE_UV[0] <= in_uv <= PLAUSIBLE_UV[1]:
        what = "flat everywhere" if in_uv < PLAUSIBLE_UV[0] else "beyond any amplifier's range"
        raise UserInputError(f"the stream's samples (median channel sd {spread:.3g}) are {what} in any unit: check "
                             f"the amplifier and its electrodes, or give --units")
    return unit


class StreamUnits:
    """Scales a live stream's raw samples (n, C) to volts: the declared units, --units, or judged (module docstring).

    `declared` is (C,) volts per unit from the stream's description, None when it declares none. `push` holds the
    first JUDGE_S seconds while the units are judged; it returns the samples (and their stamps) ready in volts.
    """

    def __init__(self, units: str, declared: np.ndarray | None, sfreq: float, source: str):
        if units not in ("auto", *UNITS):
            raise UserInputError(f"--units {units!r} must be auto, uV, mV or V")
        self.source, self.needed = source, round(JUDGE_S * sfreq)
        self.held: list[tuple[np.ndarray, np.ndarray]] = []
        self.scale: np.ndarray | float | None = None
        if units != "auto":
            if declared is not None and not np.allclose(declared, UNITS[units]):
                log.warning("%s declares other units than --units %s: taking --units", source, units)
            self.scale = UNITS[units]
        elif declared is not None:
            self.scale = declared

    @property
    def pending(self) -> int:
        """Samples held while the units are judged."""
        return sum(len(s) for _, s in self.held)

    def push(self, samples: np.ndarray, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """samples (n, C) as sent, stamps (n,) -> the samples ready so far (m, C) in volts, their stamps (m,)."""
        if self.scale is None:
            self.held.append((samples, stamps))
            if self.pending < self.needed:
                return samples[:0], stamps[:0]
            return self.flush()
        return samples * self.scale, stamps

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """Judge the units from what is held (at the end of a stream shorter than JUDGE_S too): all of it, in volts."""
        if not self.held:
            return np.zeros((0, 0)), np.zeros(0)
        samples = np.concatenate([x for x, _ in self.held])
        stamps = np.concatenate([s for _, s in self.held])
        self.held = []
        if self.scale is None:
            unit = judge_units(samples.T)
            self.scale = UNITS[unit]
            log.info("%s declares no units: its amplitude reads as %s (give --units to say otherwise)", self.source,
                     UNIT_NAMES[unit])
        return samples * self.scale, stamps
