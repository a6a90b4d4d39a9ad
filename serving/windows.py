"""Turn a request body into validated windows (B, C, F, T) or stream frames (C, F, n), or raise UserInputError
saying what was wrong.

Only the parsing is here: the window checks (shape, length, NaN/Inf) are eeg2arm.data.check_windows, the same as
the CLI's.
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np

from eeg2arm.config import EEGConfig
from eeg2arm.data import check_windows
from eeg2arm.errors import UserInputError

NPY_MAGIC = b"\x93NUMPY"


def _expects(config: EEGConfig) -> str:
    return (f"windows of shape (B, {config.n_electrodes}, {config.n_bands}, T) or one window "
            f"({config.n_electrodes}, {config.n_bands}, T) with T >= {config.min_frames}")


def _checked(X: np.ndarray, config: EEGConfig, max_windows: int, what: str) -> np.ndarray:
    if X.dtype.kind not in "iuf":
        raise UserInputError(f"{what} must hold only numbers (got {X.dtype} values); the model expects "
                             f"{_expects(config)}")
    if X.ndim == 4 and len(X) > max_windows:
        raise UserInputError(f"{what} holds {len(X)} windows but this server takes at most {max_windows} "
                             f"per request: split the batch")
    with np.errstate(over="ignore"):  # a value beyond float32's range becomes Inf, which check_windows reports
        X = X.astype(np.float32, copy=False)
    return check_windows(X, config, what)  # (B, C, F, T)


def windows_from_json(x: Any, config: EEGConfig, max_windows: int) -> np.ndarray:
    """Windows from the JSON field `x`: a nested list (B, C, F, T) or (C, F, T) of numbers."""
    try:
        X = np.asarray(x)
    except ValueError:  # numpy refuses ragged nesting
        raise UserInputError(f"x is a ragged nested list (rows of different lengths); the model expects "
                             f"{_expects(config)}") from None
    return _checked(X, config, max_windows, "x")


def windows_from_npy(body: bytes, config: EEGConfig, max_windows: int) -> np.ndarray:
    """Windows from a request body holding one array saved with numpy.save (no pickles)."""
    if not body.startswith(NPY_MAGIC):
        raise UserInputError("the body is not a .npy file (it must start with the numpy.save header): send "
                             "the bytes written by numpy.save, e.g. curl -H 'Content-Type: application/octet-stream' "
                             "--data-binary @x.npy")
    stream = io.BytesIO(body)
    try:  # the header first: np.load would allocate whatever shape it claims before reading a byte of data
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
        claimed, carried = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize, len(body) - stream.tell()
        if not dtype.hasobject and claimed != carried:  # object arrays need pickles: np.load refuses them
            raise ValueError(f"its header says shape {shape} of {dtype}, {claimed} bytes, but it carries {carried}")
        X = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UserInputError(f"the .npy body could not be read ({e}); re-save it with numpy.save") from None
    return _checked(X, config, max_windows, "the .npy array")


def frames_from_json(frames: Any, config: EEGConfig, max_frames: int) -> np.ndarray:
    """Stream frames from the JSON field `frames`: one frame (C, F) or several (C, F, n) -> float32 (C, F, n)."""
    C, F = config.n_electrodes, config.n_bands
    expects = f"one frame ({C}, {F}) or several frames ({C}, {F}, n) of band power"
    try:
        X = np.asarray(frames)
    except ValueError:  # numpy refuses ragged nesting
        raise UserInputError(f"frames is a ragged nested list (rows of different lengths); expected {expects}; "
                             f"the stream is unchanged") from None
    if X.dtype.kind not in "iuf":
        raise UserInputError(f"frames must hold only numbers (got {X.dtype} values); expected {expects}; "
                             f"the stream is unchanged")
    shape = X.shape
    if X.ndim == 2:
        X = X[..., None]
    if X.ndim != 3 or X.shape[:2] != (C, F) or X.shape[2] == 0:
        raise UserInputError(f"frames has shape {shape}; expected {expects}; the stream is unchanged")
    if X.shape[2] > max_frames:
        raise UserInputError(f"frames holds {X.shape[2]} frames but this server takes at most {max_frames} per "
                             f"request: send them in parts; the stream is unchanged")
    with np.errstate(over="ignore"):  # a value beyond float32's range becomes Inf, reported below
        X = X.astype(np.float32)
    bad = ~np.isfinite(X)
    if bad.any():
        raise UserInputError(f"frames contains {int(bad.sum())} NaN/Inf values (first in frame "
                             f"{int(np.nonzero(bad.any(axis=(0, 1)))[0][0])}): drop or repair them; the stream "
                             f"is unchanged")
    return X  # (C, F, n)
