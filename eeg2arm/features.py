"""Per-frame features of EEG in µV: log band power (the default) and the slow-potential amplitude.

`eeg2arm.recipe` decides which signal each feature reads (after re-referencing and causal filters) and stacks them
along F. The band-power recipe (../shared/data/README.md, "Recipe", steps 2-5), for a signal (..., n_samples) at
`sfreq` Hz:

* frames of w = round(frame_window * sfreq) samples every s = round(frame_step * sfreq) samples; frame k covers
  samples [k*s, k*s + w) for every k with k*s + w <= n_samples;
* per frame and channel: subtract the mean, periodic Hann window, real FFT zero-padded to
  nfft = max(w, round(sfreq)) (about 1 Hz bins), one-sided PSD density in µV²/Hz
  (= scipy.signal.periodogram(x, fs, window='hann', nfft=nfft, detrend='constant', scaling='density'));
* band power = mean PSD over the bins with lo <= f < hi; feature = log10(band power + 1e-12).

`slow_frames` is the mean of the signal over each frame (µV): the slow potentials below about 1 / frame_window Hz.

Both work on any leading shape, so the same functions serve whole trials (N, C, n) in `eeg2arm prepare` and a
sliding (C, n) buffer in a live stream.
"""
from __future__ import annotations

import re

import numpy as np
from mne.time_frequency import psd_array_welch

from .errors import UserInputError

Band = tuple[str, float, float]  # (name, lo Hz, hi Hz), lo <= f < hi
DEFAULT_BANDS: tuple[Band, ...] = (("theta", 4.0, 8.0), ("alpha", 8.0, 13.0), ("beta", 13.0, 30.0),
                                   ("gamma", 30.0, 45.0))
LOG_FLOOR = 1e-12  # keeps log10 finite for flat (e.g. disconnected) channels
_BAND_RE = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*:\s*([0-9.]+)\s*-\s*([0-9.]+)\s*$")


def parse_bands(text: str) -> tuple[Band, ...]:
    """'theta:4-8,alpha:8-13' -> (('theta', 4.0, 8.0), ('alpha', 8.0, 13.0))."""
    bands = []
    for part in text.split(","):
        m = _BAND_RE.match(part)
        if not m:
            raise UserInputError(f"--bands entry {part.strip()!r} is not NAME:LO-HI (e.g. alpha:8-13)")
        name, lo, hi = m.group(1), float(m.group(2)), float(m.group(3))
        if lo == hi:
            raise UserInputError(f"--bands {part.strip()}: a band needs two different edges, e.g. {name}:8-13")
        if lo > hi:
            raise UserInputError(f"--bands {part.strip()}: the low edge comes first (e.g. {name}:{hi:g}-{lo:g})")
        bands.append((name, lo, hi))
    names = [b[0] for b in bands]
    if len(set(names)) != len(names):
        raise UserInputError(f"--bands names must be unique, got {names}")
    return tuple(bands)


def frame_geometry(sfreq: float, frame_window: float, frame_step: float) -> tuple[int, int, int]:
    """(w, s, nfft) in samples: frame length, frame step and FFT length (about 1 Hz bins)."""
    if frame_window <= 0 or frame_step <= 0:
        raise UserInputError(f"--frame-window and --frame-step must be positive, got {frame_window} and {frame_step}")
    w, s = round(frame_window * sfreq), round(frame_step * sfreq)
    if w < 2 or s < 1:
        raise UserInputError(f"--frame-window {frame_window} s / --frame-step {frame_step} s are shorter than a sample "
                             f"pair at {sfreq:g} Hz: lengthen them")
    return w, s, max(w, round(sfreq))


def n_frames(n_samples: int, sfreq: float, frame_window: float, frame_step: float) -> int:
    """Number of whole frames T in n_samples (0 when even one frame does not fit)."""
    w, s, _ = frame_geometry(sfreq, frame_window, frame_step)
    return 0 if n_samples < w else 1 + (n_samples - w) // s


def frame_view(signal: np.ndarray, sfreq: float, frame_window: float, frame_step: float) -> np.ndarray:
    """The frames of a signal as a view: (..., n_samples) -> (..., T, w), frame k = samples [k*s, k*s + w)."""
    w, s, _ = frame_geometry(sfreq, frame_window, frame_step)
    if signal.shape[-1] < w:
        raise UserInputError(f"{signal.shape[-1]} samples ({signal.shape[-1] / sfreq:g} s) are shorter than one "
                             f"frame ({frame_window:g} s): use longer epochs or a shorter --frame-window")
    return np.lib.stride_tricks.sliding_window_view(signal, w, axis=-1)[..., ::s, :]


def check_bands(bands: tuple[Band, ...], sfreq: float, frame_window: float, frame_step: float) -> None:
    """Every band must lie below Nyquist and hold at least one FFT bin at this rate and frame length."""
    _, _, nfft = frame_geometry(sfreq, frame_window, frame_step)
    freqs = np.fft.rfftfreq(nfft, 1.0 / sfreq)
    for name, lo, hi in bands:
        if hi > sfreq / 2:
            raise UserInputError(f"band {name} ({lo:g}-{hi:g} Hz) reaches above the Nyquist frequency "
                                 f"{sfreq / 2:g} Hz of {sfreq:g} Hz data: lower it in --bands or --resample higher")
        if not np.any((freqs >= lo) & (freqs < hi)):
            raise UserInputError(f"band {name} ({lo:g}-{hi:g} Hz) holds no frequency bin (bins are "
                                 f"{sfreq / nfft:g} Hz apart): widen it in --bands")


def band_power_frames(signal: np.ndarray, sfreq: float, bands: tuple[Band, ...], frame_window: float,
                      frame_step: float) -> np.ndarray:
    """Log band power per frame: (..., n_samples) in µV -> float32 (..., F, T). See the module docstring."""
    w, s, nfft = frame_geometry(sfreq, frame_window, frame_step)
    # MNE's Welch drops the segments of NaN spans common to all channels, and makes a channel with any NaN all NaN:
    # instead, exactly the frames of a channel that hold a non-finite sample (an amplifier dropout) become NaN.
    bad = ~np.isfinite(signal)
    bad_frames = frame_view(bad, sfreq, frame_window, frame_step).any(axis=-1)  # (..., T); refuses < one frame
    check_bands(bands, sfreq, frame_window, frame_step)
    if bad.any():
        signal = np.where(bad, 0.0, signal)
    # Welch segments with remove_dc=True and average=None are exactly the recipe's frames: each segment has its
    # mean removed, a periodic Hann window, nfft-point zero-padding and density scaling (max error vs the shared
    # arrays ~1e-7, float32 rounding).
    psd, freqs = psd_array_welch(signal, sfreq, n_fft=nfft, n_per_seg=w, n_overlap=w - s, window="hann",
                                 remove_dc=True, average=None, verbose="error")  # (..., n_freqs, T)
    power = np.stack([psd[..., (freqs >= lo) & (freqs < hi), :].mean(axis=-2) for _, lo, hi in bands],
                     axis=-2)  # (..., F, T)
    if bad.any():
        power[np.broadcast_to(bad_frames[..., None, :], power.shape)] = np.nan
    return np.log10(power + LOG_FLOOR).astype(np.float32)


def slow_frames(signal: np.ndarray, sfreq: float, frame_window: float, frame_step: float) -> np.ndarray:
    """Mean amplitude per frame, same frames as band_power_frames: (..., n_samples) in µV -> float32 (..., 1, T)."""
    frames = frame_view(signal, sfreq, frame_window, frame_step)  # (..., T, w)
    return frames.mean(axis=-1)[..., None, :].astype(np.float32)
