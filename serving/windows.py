"""Turn a request body into validated windows (B, C, F, T) or stream frames (C, F, n), or raise UserInputError
(400) / TooLarge (413, naming the limit) saying what was wrong.

Sizes are checked before anything large is made: a .npy body's shape from its header, before its array is
allocated (a JSON body's byte length and value count were checked before it was parsed: serving/guard.py). The
window checks (shape, length, NaN/Inf) are eeg2arm.data.check_windows, the same as the CLI's; the service also
refuses values beyond ±MAX_VALUE.
"""
from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from eeg2arm.config import EEGConfig
from eeg2arm.data import check_windows
from eeg2arm.errors import UserInputError

from .settings import Settings

NPY_MAGIC = b"\x93NUMPY"
# The largest |value| the service takes: far beyond any band power, and small enough that the model's float32 sums
# over a window stay finite (values near float32's 3.4e38 made every probability NaN, answered 200 with nulls).
MAX_VALUE = 1e15
KINDS = {"b": "booleans", "U": "strings", "S": "bytes", "c": "complex numbers", "O": "mixed values (strings, nulls "
         "or ragged lists)", "M": "dates", "m": "time spans", "V": "records"}


class TooLarge(UserInputError):
    """The request is well formed but over one of the server's limits (413)."""


def _expects(config: EEGConfig) -> str:
    return (f"windows of shape (B, {config.n_electrodes}, {config.n_bands}, T) or one window "
            f"({config.n_electrodes}, {config.n_bands}, T) with T >= {config.min_frames}")


def kind_of(dtype: np.dtype) -> str:
    """What an array that is not numbers holds, in words: never its dtype's name, whose '<U15000000' would tell
    the length of the input."""
    return KINDS.get(dtype.kind, "values that are not numbers")


def check_size(shape: tuple[int, ...], limits: Settings, what: str) -> None:
    """TooLarge when windows of `shape` (B, C, F, T) or (C, F, T) exceed the per-request limits."""
    if len(shape) not in (3, 4):
        return  # a wrong number of dimensions is check_windows' message
    B, T = (shape[0] if len(shape) == 4 else 1), shape[-1]
    if B > limits.max_windows:
        raise TooLarge(f"{what} holds {B} windows but this server takes at most {limits.max_windows} per request "
                       f"(EEG2ARM_MAX_WINDOWS): split the batch")
    if T > limits.max_T:
        raise TooLarge(f"{what} has windows of T={T} frames but this server takes at most T={limits.max_T} "
                       f"(EEG2ARM_MAX_T): send shorter windows")
    if B * T > limits.max_frames:
        raise TooLarge(f"{what} holds {B} windows x {T} frames = {B * T} frames but this server takes at most "
                       f"{limits.max_frames} per request (EEG2ARM_MAX_FRAMES): split the batch")


def _holds_bool(x: list) -> bool:
    """Whether a rectangular nested list holds a JSON true/false (numpy would read it as 1.0/0.0)."""
    if x and type(x[0]) is list:
        return any(map(_holds_bool, x))
    return bool in map(type, x)


def _from_json(value: Any, name: str, expects: str) -> np.ndarray:
    """A nested JSON list of numbers as an array; UserInputError for ragged lists, non-numbers and booleans."""
    try:
        X = np.asarray(value)
    except ValueError:  # numpy refuses ragged nesting
        raise UserInputError(f"{name} is a ragged nested list (rows of different lengths); expected {expects}") \
            from None
    if X.dtype == object and X.size and all(type(v) in (int, float, bool) for v in X.flat):
        try:  # integers beyond int64, which numpy keeps as objects (booleans too, beside them): the ±MAX_VALUE
            # check meets them as floats, the booleans' check below as 0.0/1.0
            X = X.astype(np.float64)
        except OverflowError:  # beyond float64 too
            raise UserInputError(f"{name} contains integers beyond ±{MAX_VALUE:.0e}, far beyond any band power; "
                                 f"rescale them") from None
    # booleans become 0.0/1.0 in numpy, so look for them only where such values are
    if X.dtype.kind not in "iuf" or (X.ndim and ((X == 0) | (X == 1)).any() and _holds_bool(value)):
        got = "booleans" if X.dtype.kind in "iuf" else kind_of(X.dtype)
        raise UserInputError(f"{name} must hold only numbers (got {got}); expected {expects}")
    return X


def _checked(X: np.ndarray, config: EEGConfig, limits: Settings, what: str) -> np.ndarray:
    if X.dtype.kind not in "iuf":
        raise UserInputError(f"{what} must hold only numbers (got {kind_of(X.dtype)}); the model expects "
                             f"{_expects(config)}")
    check_size(X.shape, limits, what)
    with np.errstate(over="ignore"):  # a value beyond float32's range becomes Inf, which check_windows reports
        X = X.astype(np.float32, copy=False)
    X = check_windows(X, config, what)  # (B, C, F, T)
    _check_magnitude(X, what, "sample", 0, "")
    return X


def _check_magnitude(X: np.ndarray, what: str, unit: str, axis: int, after: str) -> None:
    """UserInputError when finite values of X lie beyond ±MAX_VALUE, naming the first `unit` along `axis`."""
    big = np.abs(X) > MAX_VALUE
    if big.any():
        first = int(np.nonzero(big.any(axis=tuple(a for a in range(X.ndim) if a != axis % X.ndim)))[0][0])
        raise UserInputError(f"{what} contains {int(big.sum())} values beyond ±{MAX_VALUE:.0e} (first in {unit} "
                             f"{first}), far beyond any band power: the model's float32 arithmetic would overflow; "
                             f"rescale them{after}")


def check_outputs(out: np.ndarray, X: np.ndarray) -> None:
    """UserInputError when the model's outputs `out` (B, ...) for windows X (B, C, F, T) are not all finite: such a
    window is answered 400, never with null probabilities."""
    finite = np.isfinite(out.reshape(len(out), -1)).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        raise UserInputError(f"window {i} drives the model to NaN/Inf outputs: its values (up to "
                             f"{float(np.abs(X[i]).max()):.3g} in magnitude) are far beyond the band power it was "
                             f"trained on; send windows in that range")


def windows_from_json(x: Any, config: EEGConfig, limits: Settings) -> np.ndarray:
    """Windows from the JSON field `x`: a nested list (B, C, F, T) or (C, F, T) of numbers."""
    return _checked(_from_json(x, "x", _expects(config)), config, limits, "x")


def read_npy(body: bytes, check_shape, what: str, expects: str, example: str = "") -> np.ndarray:
    """The array in a body written by numpy.save (no pickles). `check_shape(shape)` runs on the header's shape
    before the array is allocated; UserInputError naming what is `expects`ed when the body is not a consistent .npy
    file. numpy's own messages are never passed on: they quote the header, which the sender wrote."""
    if not body.startswith(NPY_MAGIC):
        raise UserInputError(f"{what} is not a .npy file (it must start with the numpy.save header): send {expects} "
                             f"as the bytes written by numpy.save{example}")
    unreadable = UserInputError(f"{what} could not be read as .npy (a header numpy.save does not write, or data that "
                                f"do not fit its shape and dtype): send {expects}, saved with numpy.save")
    stream = io.BytesIO(body)
    try:  # the header first: np.load would allocate whatever shape it claims before reading a byte of data
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
        if any(type(d) is not int or d >= 2**63 for d in shape):  # numpy lets True and 2**70 through as sizes
            raise ValueError("not a shape")
        claimed, carried = math.prod(shape) * dtype.itemsize, len(body) - stream.tell()  # exact, however large
    except Exception:  # numpy parses the sender's header text with tokenize and ast: ValueError, TokenError, ...
        raise unreadable from None
    if not dtype.hasobject and claimed != carried:  # object arrays need pickles: np.load refuses them
        raise unreadable
    check_shape(shape)
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise unreadable from None


def return_logits_query(query: list[tuple[str, str]]) -> bool:
    """/predict_npy's query, [(name, value)]: `return_logits=true` or `=false` at most once, as strict as the JSON
    route's field; UserInputError for any other parameter or value (they used to be ignored silently)."""
    if len(query) > 1 or any(name != "return_logits" or value not in ("true", "false") for name, value in query):
        raise UserInputError("/predict_npy takes one optional query parameter, return_logits=true or "
                             "return_logits=false")
    return query == [("return_logits", "true")]


def windows_from_npy(body: bytes, config: EEGConfig, limits: Settings) -> np.ndarray:
    """Windows from a request body holding one array saved with numpy.save."""
    X = read_npy(body, lambda shape: check_size(shape, limits, "the .npy array"), "the body", _expects(config),
                 ", e.g. curl -H 'Content-Type: application/octet-stream' --data-binary @x.npy")
    return _checked(X, config, limits, "the .npy array")


def _frames_expected(config: EEGConfig) -> str:
    C, F = config.n_electrodes, config.n_bands
    return f"one frame ({C}, {F}) or several frames ({C}, {F}, n) of band power"


def _check_frames_size(shape: tuple[int, ...], max_frames: int) -> None:
    if len(shape) == 3 and shape[2] > max_frames:
        raise TooLarge(f"frames holds {shape[2]} frames but this server takes at most {max_frames} per step "
                       f"(EEG2ARM_MAX_STREAM_FRAMES): send them in parts; the stream is unchanged")


def _checked_frames(X: np.ndarray, config: EEGConfig, max_frames: int) -> np.ndarray:
    C, F = config.n_electrodes, config.n_bands
    expects = _frames_expected(config)
    if X.dtype.kind not in "iuf":
        raise UserInputError(f"frames must hold only numbers (got {kind_of(X.dtype)}); expected {expects}; "
                             f"the stream is unchanged")
    shape = X.shape
    if X.ndim == 2:
        X = X[..., None]
    if X.ndim != 3 or X.shape[:2] != (C, F) or X.shape[2] == 0:
        raise UserInputError(f"frames has shape {shape}; expected {expects}; the stream is unchanged")
    _check_frames_size(X.shape, max_frames)
    with np.errstate(over="ignore"):  # a value beyond float32's range becomes Inf, reported below
        X = X.astype(np.float32)
    bad = ~np.isfinite(X)
    if bad.any():
        raise UserInputError(f"frames contains {int(bad.sum())} NaN/Inf values (first in frame "
                             f"{int(np.nonzero(bad.any(axis=(0, 1)))[0][0])}): drop or repair them; the stream "
                             f"is unchanged")
    _check_magnitude(X, "frames", "frame", -1, "; the stream is unchanged")
    return X  # (C, F, n)


def frames_from_json(frames: Any, config: EEGConfig, max_frames: int) -> np.ndarray:
    """Stream frames from the JSON field `frames`: one frame (C, F) or several (C, F, n) -> float32 (C, F, n)."""
    expects = f"{_frames_expected(config)}; the stream is unchanged"
    return _checked_frames(_from_json(frames, "frames", expects), config, max_frames)


def frames_from_npy(body: bytes, config: EEGConfig, max_frames: int) -> np.ndarray:
    """Stream frames from a binary message written by numpy.save: (C, F) or (C, F, n) -> float32 (C, F, n)."""
    X = read_npy(body, lambda shape: _check_frames_size(tuple(shape), max_frames), "the message",
                 _frames_expected(config))
    return _checked_frames(X, config, max_frames)
