"""Load and validate X.npy (N, C, F, T) / y.npy (N,) / groups.npy (N,) / meta.json and split train from validation."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .config import EEGConfig
from .errors import UserInputError

log = logging.getLogger("eeg2arm")


def load_npy(path: str | Path, what: str) -> np.ndarray:
    """np.load a plain (non-pickled) array, or raise UserInputError naming `what` and the fix."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{what} file not found: {path}")
    if path.suffix != ".npy":
        raise UserInputError(f"{what} must be a .npy file saved with numpy.save, got {path.name}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        detail = "it holds Python objects, which are never loaded" if "allow_pickle" in str(e) else str(e)[:200]
        raise UserInputError(f"{what} {path} is not a readable .npy array ({detail}): re-save it with numpy.save "
                             f"as a numeric array") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise UserInputError(f"{what} {path} must hold numbers, got dtype {getattr(arr, 'dtype', type(arr))}")
    return arr


def check_windows(X: np.ndarray, config: EEGConfig, what: str = "X", single_ok: bool = True,
                  training: bool = False) -> np.ndarray:
    """Validate band-power windows against the model and return them as float32 (B, C, F, T).

    With single_ok, one window (C, F, T) is accepted and becomes (1, C, F, T). With training, a C/F mismatch
    suggests the training flags that fit the data.
    """
    if X.dtype.kind not in "iuf":
        raise UserInputError(f"{what} must hold numbers, got dtype {X.dtype}")
    if X.ndim == 3 and single_ok:
        X = X[None]
    if X.ndim != 4:
        expected = "(N, C, F, T) or a single window (C, F, T)" if single_ok else "(N, C, F, T)"
        raise UserInputError(f"{what} has shape {X.shape}; expected {expected}")
    if X.shape[0] == 0:
        raise UserInputError(f"{what} holds no samples (shape {X.shape}): give at least one window of shape "
                             f"(C={config.n_electrodes}, F={config.n_bands}, T>={config.min_frames})")
    _, C, F, T = X.shape
    if (C, F) != (config.n_electrodes, config.n_bands):
        fix = (f"pass --elec {C} --bands {F} to train on this data" if training else
               f"give windows of {config.n_electrodes} electrodes and {config.n_bands} bands, as the model was "
               f"trained on")
        raise UserInputError(f"Data shapes (C={C}, F={F}) do not match config (C={config.n_electrodes}, "
                             f"F={config.n_bands}): {fix}")
    if T < config.min_frames:
        raise UserInputError(f"{what} has T={T} frames but the model needs at least T={config.min_frames} "
                             f"(cnn_time_pool / clip_length): use longer windows")
    bad = ~np.isfinite(X)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise UserInputError(f"{what} contains {int(bad.sum())} NaN/Inf values (first in sample {first}): "
                             f"remove or impute them")
    return X.astype(np.float32, copy=False)


def check_labels(y: np.ndarray, n_samples: int, n_classes: int, training: bool = True) -> np.ndarray:
    """Validate integer labels in [0, K-1], one per sample, and return them as int64."""
    if y.ndim != 1:
        raise UserInputError(f"y has shape {y.shape}; expected (N,) integer labels")
    if len(y) != n_samples:
        raise UserInputError(f"X has {n_samples} samples but y has {len(y)} labels: they must match")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise UserInputError("y must hold integer class indices, found non-integer values")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= n_classes:
        where = f"for --classes {n_classes}" if training else f"for this model's {n_classes} classes"
        fix = "fix the labels or update --classes" if training else "fix the labels (or evaluate a model of them)"
        raise UserInputError(f"labels must be in [0, {n_classes - 1}] {where}, found [{y.min()}, {y.max()}]: {fix}")
    return y


def check_groups(groups: np.ndarray, n_samples: int) -> np.ndarray:
    """Validate one integer group id (recording or subject) per sample."""
    if groups.ndim != 1 or len(groups) != n_samples:
        raise UserInputError(f"groups has shape {groups.shape} but X has {n_samples} samples: give one group id per "
                             f"sample, e.g. the groups.npy that eeg2arm prepare wrote beside X.npy")
    if groups.dtype.kind not in "iu":
        raise UserInputError(f"groups must hold integer ids, got dtype {groups.dtype}: give the groups.npy that "
                             f"eeg2arm prepare wrote beside X.npy")
    return groups.astype(np.int64, copy=False)


def group_names(meta_path: str | Path) -> list[str] | None:
    """The names of prepare's group ids (subjects or files) from its meta.json, if it records them."""
    try:
        meta = json.loads(Path(meta_path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(meta, dict):
        return None
    if isinstance(meta.get("group_names"), list):
        return [str(n) for n in meta["group_names"]]
    if meta.get("groups") == "index into source_files":  # made before --group-by
        return [Path(f["path"]).name for f in meta.get("source_files", []) if isinstance(f, dict) and "path" in f]
    return None


def meta_beside(x_path: str | Path) -> Path | None:
    """The meta.json in X.npy's folder, if there is one."""
    path = Path(x_path).parent / "meta.json"
    return path if path.is_file() else None


def checked_meta(x_path: str | Path, meta_path: str | Path | None = None) -> Path | None:
    """The meta.json that says how X.npy was made (`meta_path`, else the one beside it), or None after warning that
    the data's recipe goes unchecked."""
    meta_path = meta_path or meta_beside(x_path)
    if meta_path is None:
        log.warning("no meta.json beside %s: the data's recipe is not checked against the model's (give --meta, or "
                    "keep X.npy in the folder prepare wrote)", Path(x_path).name)
    return Path(meta_path) if meta_path else None


def data_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """EEGConfig's data fields (class, channel and band names, band edges, sfreq, frame window/step, the feature
    recipe) from a meta.json written by `eeg2arm prepare` (its recipe keys are Recipe.to_meta's) or found in
    ../shared/data/bandpower; keys it lacks are left out, so a meta.json made before recipes describes band power of
    the unreferenced signal (Recipe.from_fields)."""
    inputs = meta.get("input_channels")
    fields = {
        "class_names": meta.get("classes"),
        "channel_names": meta.get("channels"),
        "band_names": [b[0] for b in meta["bands"]] if "bands" in meta else None,
        "band_edges": [(b[1], b[2]) for b in meta["bands"]] if "bands" in meta else None,
        "sfreq": meta.get("sfreq"),
        "frame_window": meta.get("frame_window_s"),
        "frame_step": meta.get("frame_step_s"),
        "features": meta.get("features"),
        "reference": meta.get("reference"),
        "montage": meta.get("montage"),
        "bandpass": meta.get("bandpass"),
        "input_channels": inputs if inputs != meta.get("channels") else None,
        "sensor_channels": meta.get("sensor_channels"),
        "spatial": meta.get("spatial"),
        "csp_filters": meta.get("csp_filters"),
        "align": meta.get("align"),
    }
    return {k: v for k, v in fields.items() if v is not None}


def load_data_meta(path: str | Path) -> dict[str, Any]:
    """data_fields of the meta.json at `path`, or UserInputError when it cannot be read as one."""
    path = Path(path)
    try:
        return data_fields(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError, KeyError,
            IndexError) as e:
        raise UserInputError(f"meta file {path} is not a readable eeg2arm meta.json ({type(e).__name__}: {e}); "
                             f"give the meta.json that `eeg2arm prepare` wrote") from None


def split_indices(y: np.ndarray, val_split: float, seed: int, groups: np.ndarray | None = None,
                  last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Train/val indices: stratified random split, by group (no group on both sides) when groups are given, or with
    `last` the last trials in file order (time order within a recording) validate, as later sessions would;
    val_split (in [0, 1), as TrainOptions.check ensures) 0: every trial trains, none validates."""
    from sklearn.model_selection import GroupShuffleSplit, train_test_split  # here: the service needs no sklearn

    n = len(y)
    if val_split == 0:
        return np.arange(n), np.arange(0)
    n_val = int(np.ceil(n * val_split))
    if n < 2 or n_val >= n:
        raise UserInputError(f"too few samples ({n}) for --val-split {val_split}: need at least one sample on each "
                             f"side; add data or change --val-split")
    idx = np.arange(n)
    if last:
        if groups is not None:
            raise UserInputError("--val-last validates on the last trials, --groups on whole groups: give one")
        return idx[:n - n_val], idx[n - n_val:]
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise UserInputError("--groups has a single group: a grouped split needs at least two")
        if np.ceil(n_groups * val_split) >= n_groups:  # GroupShuffleSplit's own count of validation groups
            raise UserInputError(f"--val-split {val_split} of {n_groups} groups leaves none for training: lower "
                                 f"--val-split or add groups")
        splitter = GroupShuffleSplit(n_splits=1, test_size=val_split, random_state=seed)
        train_idx, val_idx = next(splitter.split(idx, y, groups))
        classes = set(np.unique(y))
        if set(y[train_idx]) == classes and set(y[val_idx]) == classes:
            return train_idx, val_idx
        log.warning("a split by group cannot keep every class on both sides (%d groups): split by window instead",
                    n_groups)
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 and n_val >= len(counts[counts > 0]) else None
    train_idx, val_idx = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(train_idx), np.sort(val_idx)
