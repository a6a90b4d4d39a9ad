"""The learned parts of a recipe, fitted on the recordings `eeg2arm prepare` reads (eeg2arm.spatial):

* one alignment per recording, from that recording's own signal (as `stream` aligns a session from its first
  seconds);
* the filter-bank CSP filters, from the labelled training trials of every file (each aligned first).

`prepare --like` fits only the alignments (of the new recordings): the filters come with the recipe.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from .errors import UserInputError
from .recipe import BANK, Recipe
from .recordings import Recording
from .spatial import Alignment, fit_csp, is_tangent, whitened
from .trials import Span, recording_moments, trial_signals


def recording_alignments(recordings: dict[Path, Recording], recipe: Recipe) -> dict[Path, Alignment]:
    """{recording: its alignment} from all its samples."""
    return {path: recording_moments(inst, recipe).alignment(recipe.align, f"the signal of {path}")
            for path, inst in recordings.items()}


def fit_spatial(recordings: dict[Path, Recording], recipe: Recipe, event_class: dict[str, int], span: Span,
                alignments: dict[Path, Alignment]) -> Recipe:
    """The recipe with its CSP filters fitted on every file's labelled trials (band-passed per band, aligned);
    whitened on the same trials for a csp-tangent recipe."""
    banks, labels = [], []
    for path, inst in recordings.items():
        signals, y, _ = trial_signals(path, inst, event_class, recipe, span, alignments.get(path), quiet=True)
        if signals is not None:
            banks.append(signals[BANK].astype(np.float32))  # (N, F, C, n): float32 halves the memory of the fit
            labels.append(y)
    if not labels:
        raise UserInputError("--spatial csp learns its filters from labelled trials, and the files give none: check "
                             "--event and --tmin/--tmax")
    bank = np.concatenate(banks)  # (N, F, C, n)
    filters = fit_csp(bank, np.concatenate(labels), recipe.spatial)
    if is_tangent(recipe.spatial):  # the tangent space's reference becomes the identity
        filters = whitened(filters, bank)
    return dataclasses.replace(recipe, csp_filters=filters)


def load_alignment(meta_path: str | Path, recipe: Recipe) -> Alignment:
    """The one recording's alignment recorded in a meta.json of `eeg2arm prepare` (e.g. `prepare NEW --like` on the
    subject's own recording), checked against the recipe's channels and method."""
    if not Path(meta_path).is_file():
        raise UserInputError(f"--align-from {meta_path}: no such file; give the meta.json that `eeg2arm prepare "
                             f"--like` wrote for the subject's own recording")
    try:
        meta = json.loads(Path(meta_path).read_text())
        method, groups = meta["alignment"]["method"], meta["alignment"]["recordings"]
        channels = tuple(meta.get("sensor_channels") or meta["channels"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise UserInputError(f"--align-from {meta_path} records no alignment: give the meta.json that `eeg2arm "
                             f"prepare --like` wrote for the subject's own recording") from None
    if not isinstance(groups, dict) or len(groups) != 1:
        names = ", ".join(list(groups)[:4]) if isinstance(groups, dict) else "?"
        raise UserInputError(f"--align-from {meta_path} holds {len(groups)} alignments ({names} ...): prepare one "
                             f"recording of the subject --like the training data and give that meta.json")
    if channels != recipe.channels or method != recipe.align:
        raise UserInputError(f"--align-from {meta_path} was made for channels {', '.join(channels[:4])} ... "
                             f"({method}), not this model's recipe: prepare the subject's recording --like the "
                             f"model's training data")
    try:
        return Alignment.from_json(method, next(iter(groups.values())), len(channels))
    except ValueError as e:
        raise UserInputError(f"--align-from {meta_path}: {e}: use the meta.json eeg2arm wrote, unedited") from None
