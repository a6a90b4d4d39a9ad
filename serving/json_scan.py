"""A cheap look at a JSON body's bytes before it is parsed, so that no body within the size limit can fan out into
millions of Python objects or send the parser down thousands of levels.

    check_json(body, windows_bound(settings, config), "the JSON body of /predict")   # TooLarge or UserInputError

Counting commas alone (one per number) misses containers: `[[[[]]]],[[[[]]]],...` makes many lists per comma
(16 MiB of it took 7 s and 1.6 GB of a worker). So three counts, from one bytes.translate that keeps only the
commas, quotes and brackets, then one numpy pass over the quotes and brackets (about 50 µs for one window of 40 KB,
tens of milliseconds for 16 MiB):
- numbers, as commas + 1 (a valid body has one comma per number, give or take its few fields), and lists and
  objects, as '[' + '{', each against what the route's largest valid body holds -> 413 naming the limit;
- nesting, the '[' and '{' open at once outside strings: at most MAX_DEPTH, far below the parser's recursion
  limit and above any body's own ({"x": (B, C, F, T)} is 5; a schema allows extra fields, nested too) -> 400.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eeg2arm.config import EEGConfig
from eeg2arm.errors import UserInputError

from .settings import Settings
from .windows import TooLarge

MAX_DEPTH = 16  # levels of nesting
FIELDS = 16  # the lists, objects and values a body holds besides its windows or frames
_NOT_MARKS = bytes(sorted(set(range(256)) - set(b'"[]{},')))


def json_values(frames: int, config: EEGConfig) -> int:
    """The most values a JSON body or message of `frames` frames can use: frames x C x F numbers + its few other
    fields."""
    return frames * config.n_electrodes * config.n_bands + FIELDS


@dataclass(frozen=True)
class JsonBound:
    values: int  # numbers the route can use (+ its other fields)
    lists: int  # lists and objects of its largest valid body
    limit: str  # the setting behind `values` and `lists`, for the message
    fix: str  # what to do when over them


def windows_bound(settings: Settings, config: EEGConfig) -> JsonBound:
    """/predict's {"x": (B, C, F, T)}: the most frames per request, in as many windows as can each hold min_T
    (EEG2ARM_MAX_WINDOWS may allow fewer: that is checked after parsing, in a message that names it)."""
    C, F = config.n_electrodes, config.n_bands
    windows = settings.max_frames // config.min_frames
    return JsonBound(json_values(settings.max_frames, config), windows * (C * F + C + 1) + FIELDS,
                     "EEG2ARM_MAX_FRAMES", "split it into smaller requests")


def frames_bound(max_frames: int, config: EEGConfig, fix: str) -> JsonBound:
    """A stream step's {"frames": (C, F, n)}, n <= max_frames (EEG2ARM_MAX_STREAM_FRAMES)."""
    C, F = config.n_electrodes, config.n_bands
    return JsonBound(json_values(max_frames, config), C * F + C + FIELDS, "EEG2ARM_MAX_STREAM_FRAMES", fix)


def check_json(body: bytes, bound: JsonBound, what: str) -> None:
    """TooLarge when `body` holds more numbers or lists than `bound` allows; UserInputError when it nests deeper
    than MAX_DEPTH. Whether it is valid JSON the parser says afterwards."""
    if b"\\" in body:  # see _depth
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = body.translate(None, _NOT_MARKS)  # its commas, quotes and brackets, in order
    if marks.count(b",") + 1 > bound.values:
        raise TooLarge(f"{what} holds more than the {bound.values} values it can use ({bound.limit}): {bound.fix}")
    marks = marks.replace(b",", b"")
    if marks.count(b"[") + marks.count(b"{") > bound.lists:
        raise TooLarge(f"{what} holds more than the {bound.lists} lists it can use ({bound.limit}): {bound.fix}")
    if marks.count(b'"') > 4 * (bound.values + bound.lists):  # a string is a value (a comma) or a key
        raise UserInputError(f"{what} is not valid JSON (more strings than values and keys): see /docs.json")
    if _depth(marks) > MAX_DEPTH:
        raise UserInputError(f"{what} nests deeper than {MAX_DEPTH} levels, far deeper than any request needs: "
                             f"see /docs.json")


def _depth(marks: bytes) -> int:
    """The most '[' and '{' open at once outside strings, from a JSON text's quotes and brackets in order, its escapes
    out. Exact for valid JSON; for invalid JSON, up to its first error, which is as far as a parser goes.

    The escapes go out left to right as a parser reads them: a run of backslashes loses its pairs, and a quote
    still after a backslash is inside its string (check_json removes both from the body with bytes.replace)."""
    marks = np.frombuffer(marks, np.uint8)
    quote = marks == ord('"')
    outside = (np.cumsum(quote, dtype=np.int32) & 1) == 0  # an even number of quotes before: not in a string
    steps = np.where(quote | ~outside, 0, (marks & 2).astype(np.int32) - 1)  # '[' and '{' have bit 1: +1, else -1
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))
