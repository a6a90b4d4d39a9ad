"""`eeg2arm.Decoder`: EEGModel as a scikit-learn classifier, for cross_val_score, GridSearchCV and MOABB.

It runs what the CLI runs, through the same functions: the recipe is the arguments of `eeg2arm prepare` and `eeg2arm
train` (a row of benchmarks/recipes.toml, or a named recipe: eeg2arm.named_recipes), read by those commands' own
parsers; `fit` cuts the trials and computes the features with `prepare.prepare_recordings` (fitting the recipe's
learned parts: CSP filters, alignments) and trains with `train.train`; `predict` prepares new trials like the training
data (`prepare --like`: an aligned recipe aligns them from their own signal, taken as one group) and runs the model.

Trials come as an `mne.Epochs` (its events name the classes through the recipe's --event, and its --tmin/--tmax cut
each epoch, as `prepare` cuts an -epo.fif file) or as an array (n_trials, n_channels, n_samples) with `sfreq` and
`ch_names`, each trial taken whole, in volts as MNE gives it (`units="uV"` for MOABB's arrays, which are in µV).
A list of recordings (mne.io.Raw or Epochs, e.g. opened files) is taken as `prepare` takes its files: the recipe's
filters run over each from its first sample, its trials are cut by the recipe, and predict gives one answer per
trial cut (so such X is for fit / predict / score, not for scikit-learn's splitters, which split X itself). The
trials keep the list's order (`prepare` sorts its files by path; --fit-readout's inner folds are contiguous).
"""
from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import mne
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .config import CALIBRATION_WEIGHT
from .data import check_windows, data_fields
from .prepare import PrepareOptions, Prepared, options_from_meta, prepare_recordings
from .recordings import Recording, resampled

if TYPE_CHECKING:
    from export.onnx_export import ExportResult

log = logging.getLogger("eeg2arm")

UNITS = {"V": 1.0, "uV": 1e-6}  # an array's unit -> volts
RECIPE_KEYS = ("prepare", "train", "groups")  # a row of benchmarks/recipes.toml, as Decoder reads it
PARAMS = ("recipe", "sfreq", "ch_names", "units")  # the named parameters; every other one is a train option
DATA_FLAGS = ("x_path", "y_path", "save", "groups_path", "meta_path", "classes", "elec", "bands")  # Decoder's own
TRIAL = "trial"  # the event name of unlabelled trials (predict)
PARITY_WINDOWS = 64  # training windows kept for the ONNX parity check of export()


class Decoder(ClassifierMixin, BaseEstimator):
    """EEGModel trained by a recipe on labelled EEG trials (see the module docstring).

    recipe: the name of a shipped recipe (`eeg2arm recipes`) or a dict {"prepare": [...], "train": [...],
    "groups": bool} of `eeg2arm prepare` / `eeg2arm train` arguments as benchmarks/recipes.toml holds them (--classes,
    --elec and --bands come from the data). sfreq (Hz), ch_names and units ("V" or "uV") describe array input.
    train_options: more `eeg2arm train` options by parameter name (epochs=5, frame_embed=16, lr=1e-3, ...), over the
    recipe's; they are parameters like the others (get_params, set_params, GridSearchCV).
    """

    def __init__(self, recipe: str | dict[str, Any], *, sfreq: float | None = None,
                 ch_names: list[str] | None = None, units: str = "V", **train_options: Any):
        self.recipe = recipe
        self.sfreq = sfreq
        self.ch_names = ch_names
        self.units = units
        self.train_options = train_options

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PARAMS} | self.train_options

    def set_params(self, **params: Any) -> Decoder:
        """Set parameters by name; a name other than recipe, sfreq, ch_names, units is a train option (checked by
        fit against `eeg2arm train`'s options)."""
        for name, value in params.items():
            if name in PARAMS:
                setattr(self, name, value)
            else:
                self.train_options = {**self.train_options, name: value}
        return self

    def fit(self, X: mne.BaseEpochs | np.ndarray | list[Recording], y: np.ndarray | None = None,
            groups: np.ndarray | list | None = None) -> Decoder:
        """Prepare the trials by the recipe and train EEGModel on them (its own validation split picks the epoch;
        with val_split=0 every trial trains and the last epoch is kept).

        y: one label per trial (any values; classes_ is their sorted set), or None for an Epochs or recordings,
        whose events give the classes through the recipe's --event. groups: one subject or recording per trial (per
        recording for a list of recordings), each aligned from its own signal by an aligned recipe, and split by in
        validation when the recipe says groups = true.
        """
        from .train import settings_from_flags, train

        prepare_args, train_args, by_group = recipe_lists(self.recipe)
        opts = prepare_options(prepare_args)
        classes = None
        if is_recordings(X):
            if y is not None:
                raise ValueError("recordings are labelled by their annotations or events through the recipe's "
                                 "--event: give y=None")
            recordings, group_of = recordings_of(X, groups, opts.resample)
            prepared = prepare_recordings(recordings, opts, group_of)
        else:
            if y is None and not isinstance(X, mne.BaseEpochs):
                raise ValueError("fit needs the labels y of an array X (only an mne.Epochs names its classes)")
            epochs, classes = self._epochs(X, y)
            if classes is not None:  # the labels given replace the recipe's --event classes
                opts = dataclasses.replace(opts, events=tuple((str(c), str(c)) for c in classes))
            if not isinstance(X, mne.BaseEpochs):
                opts = dataclasses.replace(opts, tmin=None, tmax=None)  # an array's trials are taken whole
            prepared = prepare_trials(epochs, opts, groups)
        self.classes_ = np.asarray(prepared.meta["classes"] if classes is None else classes)
        C, F = prepared.X.shape[1:3]
        config, train_opts, extra = settings_from_flags(train_flags(train_args, self.train_options,
                                                                    (len(self.classes_), C, F)))
        config = dataclasses.replace(config, **data_fields(prepared.meta))
        with tempfile.TemporaryDirectory(prefix="eeg2arm-decoder-") as tmp:
            save = Path(tmp) / "model.pt"
            groups = prepared.groups if by_group and train_opts.validates else None  # the split's groups
            train(prepared.X, prepared.y, config, save, train_opts, groups=groups, echo=log.info, progress=False,
                  **extra)
            from .checkpoint import load_model_from_checkpoint, read_checkpoint

            self.checkpoint_ = read_checkpoint(save)
            self.model_, _ = load_model_from_checkpoint(save, "cpu")
        self.meta_ = prepared.meta
        self.like_ = options_from_meta(prepared.meta, opts.resample, None)
        self.windows_ = prepared.X[:PARITY_WINDOWS]  # (<= 64, C, F, T): real windows for export's parity check
        return self

    def predict_proba(self, X: mne.BaseEpochs | np.ndarray | list[Recording]) -> np.ndarray:
        """(n_trials, n_classes) probabilities, columns in classes_ order; every trial of X, in its order (of a list
        of recordings: the trials the recipe cuts, recording by recording)."""
        from .infer import predict_logits, softmax

        check_is_fitted(self)
        features = check_windows(self._prepared_like(X).X, self.model_.config)  # (N, C, F, T)
        return softmax(predict_logits(self.model_, features))

    def predict(self, X: mne.BaseEpochs | np.ndarray | list[Recording]) -> np.ndarray:
        probs = self.predict_proba(X)  # (N, K)
        return self.classes_[probs.argmax(axis=1)]

    def calibrate(self, X: mne.BaseEpochs | np.ndarray | list[Recording], y: np.ndarray | None = None,
                  weight: float = CALIBRATION_WEIGHT) -> Decoder:
        """Update the fitted readout with a new subject's labelled trials, as `eeg2arm calibrate` does (README, "A new
        subject: calibrate"; a recipe of `--fit-readout --epochs 0` on two classes): X the subject's recordings
        (labelled by their events through the recipe's --event, aligned together from their own signal as predict
        aligns them), or its trials as an mne.Epochs (its events named as in fit) or an array with labels y among
        classes_. Returns self, calibrated: predict, save and export as after fit (the subject's alignment is not
        kept: predict aligns each X from its own signal)."""
        from .calibrate import calibrate, check_weight
        from .checkpoint import load_model_from_checkpoint, read_checkpoint

        check_is_fitted(self)
        check_weight(weight)
        if "readout_prior" not in self.checkpoint_["metrics"]:
            raise ValueError("this decoder's readout was not fitted alone on two classes (a recipe of --fit-readout "
                             "--epochs 0): it has nothing to calibrate")
        prepared = self._prepared_like(X, self._class_labels(X, y), labelled=True)
        with tempfile.TemporaryDirectory(prefix="eeg2arm-calibrate-") as tmp:
            before, after = Path(tmp) / "before.pt", Path(tmp) / "after.pt"
            self.save(before)
            calibrate(before, prepared.X, prepared.y, after, weight, echo=log.info, source="Decoder.calibrate")
            self.checkpoint_ = read_checkpoint(after)
            self.model_, _ = load_model_from_checkpoint(after, "cpu")
        return self

    def _class_labels(self, X: Any, y: np.ndarray | None) -> np.ndarray | None:
        """y as values of classes_ (checked), or None where X's events label the trials (recordings, Epochs)."""
        if is_recordings(X) and y is not None:
            raise ValueError("recordings are labelled by their events through the recipe's --event: give y=None")
        if y is None:
            if not (is_recordings(X) or isinstance(X, mne.BaseEpochs)):
                raise ValueError("calibrate needs the labels y of an array X (only recordings and mne.Epochs name "
                                 "their classes)")
            return None
        labels = np.asarray(y)
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        if labels.ndim != 1 or not all(c in index for c in labels.tolist()):
            raise ValueError(f"y must be one label per trial among this decoder's classes {self.classes_.tolist()}")
        return self.classes_[[index[c] for c in labels.tolist()]]

    def _prepared_like(self, X: mne.BaseEpochs | np.ndarray | list[Recording], labels: np.ndarray | None = None,
                       labelled: bool = False) -> Prepared:
        """New trials prepared like the training data (`prepare --like`): recordings one group aligned from its own
        signal, labelled by their events; an Epochs or array labelled by `labels` (values of classes_), else an
        Epochs by its events through the recipe when `labelled`, else every trial unlabelled (predict)."""
        if is_recordings(X):
            recordings, _ = recordings_of(X, None, self.like_.resample)
            return prepare_recordings(recordings, self.like_, {path: "new" for path in recordings})
        epochs, _ = self._epochs(X, labels)
        if labels is not None:  # named as fit names an array's classes
            opts = dataclasses.replace(self.like_, events=tuple((str(c), str(c)) for c in self.classes_))
        elif labelled:
            opts = self.like_
        else:
            names = tuple(epochs.event_id) if isinstance(X, mne.BaseEpochs) else (TRIAL,)
            opts = dataclasses.replace(self.like_, events=tuple((name, TRIAL) for name in names))
        if not isinstance(X, mne.BaseEpochs):
            opts = dataclasses.replace(opts, tmin=None, tmax=None)
        return prepare_trials(epochs, opts, None)

    def save(self, path: str | Path) -> None:
        """Write the standard checkpoint (the guide's keys; `eeg2arm infer`, `export` and `stream` read it)."""
        from .atomic import check_writable
        from .checkpoint import save_checkpoint

        check_is_fitted(self)
        path = Path(path)
        check_writable(path, "path")
        ckpt = self.checkpoint_
        save_checkpoint(path, self.model_, ckpt["example_input_shape"], ckpt["epoch"], ckpt["metrics"])

    def export(self, path: str | Path, atol: float = 1e-4) -> ExportResult:
        """Write model.onnx (and its streaming step graph beside it, model.step.onnx) as `eeg2arm export` does, with
        parity against PyTorch measured on training windows."""
        from export.onnx_export import export_onnx

        check_is_fitted(self)
        with tempfile.TemporaryDirectory(prefix="eeg2arm-export-") as tmp:
            ckpt, windows = Path(tmp) / "model.pt", Path(tmp) / "X.npy"
            self.save(ckpt)
            np.save(windows, self.windows_)
            return export_onnx(ckpt, path, atol=atol, x_path=windows, echo=log.info)

    def _epochs(self, X: mne.BaseEpochs | np.ndarray, y: np.ndarray | None) -> tuple[mne.BaseEpochs, np.ndarray | None]:
        """X as MNE epochs (volts), their events the labels y when given; and the classes (sorted labels) or None
        when the epochs' own events name them."""
        if isinstance(X, mne.BaseEpochs):
            if y is None:
                return X, None
            data, info, tmin = X.get_data(picks="all", verbose="error"), X.info, X.tmin
        else:
            data, info, tmin = self._array(X), None, 0.0
        n = len(data)
        labels = np.zeros(n, dtype=np.int64) if y is None else np.asarray(y)
        if labels.ndim != 1 or len(labels) != n:
            raise ValueError(f"y has shape {labels.shape}: give one label per trial ({n})")
        classes, codes = np.unique(labels, return_inverse=True)
        event_id = {str(c): i + 1 for i, c in enumerate(classes)} if y is not None else {TRIAL: 1}
        events = np.column_stack([np.arange(n), np.zeros(n, int), codes + 1 if y is not None else np.ones(n, int)])
        info = info or mne.create_info(list(self.ch_names), float(self.sfreq), "eeg")
        epochs = mne.EpochsArray(data, info, events, tmin=tmin, event_id=event_id, verbose="error")
        return epochs, (classes if y is not None else None)

    def _array(self, X: np.ndarray) -> np.ndarray:
        """An array of trials (N, C, S), checked against sfreq, ch_names and units, in volts."""
        if self.units not in UNITS:
            raise ValueError(f"units={self.units!r} must be one of {', '.join(UNITS)}")
        if self.sfreq is None or self.ch_names is None:
            raise ValueError("an array X needs sfreq= and ch_names= (MNE Epochs carry them)")
        X = np.asarray(X, dtype=float)
        if X.ndim != 3 or X.shape[1] != len(self.ch_names):
            raise ValueError(f"X has shape {X.shape}: give (n_trials, n_channels={len(self.ch_names)}, n_samples)")
        if not np.isfinite(X).all():
            raise ValueError("X holds NaN or Inf: remove or impute those trials")
        volts = X * UNITS[self.units]
        if np.median(np.abs(volts)) > 1e-3:  # EEG in volts stays well below a millivolt
            log.warning("X looks like microvolts, not volts (median |X| %.3g): pass units='uV' if it is",
                        np.median(np.abs(X)))
        return volts

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")


def is_recordings(X: Any) -> bool:
    return isinstance(X, (list, tuple)) and len(X) > 0 and all(isinstance(r, (mne.io.BaseRaw, mne.BaseEpochs))
                                                               for r in X)


def recordings_of(X: list[Recording], groups: Any, resample: float | None) -> tuple[dict[Path, Recording],
                                                                                    dict[Path, str]]:
    """({name: recording} in X's order, {name: group}): one group per recording, or `groups` (one per recording)."""
    paths = [Path(f"recording {i}") for i in range(len(X))]
    names = [path.name for path in paths] if groups is None else [str(g) for g in groups]
    if len(names) != len(X):
        raise ValueError(f"groups has {len(names)} entries: give one group per recording ({len(X)})")
    return {path: resampled(inst, resample) for path, inst in zip(paths, X)}, dict(zip(paths, names))


def recipe_lists(recipe: str | dict[str, Any]) -> tuple[list[str], list[str], bool]:
    """(prepare arguments, train arguments, whether train splits by group) of a recipe name or row."""
    from .named_recipes import named_recipe

    if isinstance(recipe, str):
        named = named_recipe(recipe)
        return list(named.prepare), list(named.train), named.groups
    if not isinstance(recipe, dict) or "prepare" not in recipe or set(recipe) - set(RECIPE_KEYS):
        raise ValueError(f"recipe must be a recipe's name or a dict with keys {', '.join(RECIPE_KEYS)} (prepare "
                         f"required), got {recipe!r}")
    lists = [recipe["prepare"], recipe.get("train", [])]
    if not all(isinstance(a, (list, tuple)) and all(isinstance(x, str) for x in a) for a in lists):
        raise ValueError("the recipe's prepare and train must be lists of command-line arguments (strings)")
    return list(lists[0]), list(lists[1]), bool(recipe.get("groups", False))


def prepare_options(args: list[str]) -> PrepareOptions:
    from .cli.data import prepare_options as parsed

    return parsed(args)


def train_flags(args: list[str], options: dict[str, Any], sizes: tuple[int, int, int]) -> dict[str, Any]:
    """`eeg2arm train`'s parameters for a recipe's train arguments, then `options` by parameter name (converted
    and checked by each parameter's type); --classes, --elec and --bands are the data's (K, C, F) sizes."""
    from .cli.common import command_context

    K, C, F = sizes
    ctx = command_context("train", ["--x", "X.npy", "--y", "y.npy", "--save", "model.pt", *args,
                                    "--classes", K, "--elec", C, "--bands", F])
    params = {p.name: p for p in ctx.command.params if p.name not in DATA_FLAGS}
    flags = dict(ctx.params)
    for name, value in options.items():
        if name not in params:
            raise ValueError(f"{name!r} is not an option of `eeg2arm train` that Decoder takes (one of "
                             f"{', '.join(sorted(params))})")
        try:
            flags[name] = params[name].type_cast_value(ctx, value)
        except click.BadParameter as e:
            raise ValueError(f"{name}={value!r}: {e.format_message()}") from None
    return flags


def prepare_trials(epochs: mne.BaseEpochs, opts: PrepareOptions, groups: np.ndarray | None) -> Prepared:
    """The trials through the recipe, as `prepare` does with files: one recording per group (all one group when
    groups is None), each group aligned from its own signal by an aligned recipe."""
    epochs = resampled(epochs, opts.resample)
    if groups is None:
        recordings: dict[Path, Recording] = {Path("trials"): epochs}
    else:
        groups = np.asarray(groups)
        if groups.shape != (len(epochs),):
            raise ValueError(f"groups has shape {groups.shape}: give one group per trial ({len(epochs)})")
        recordings = {Path(f"group {g}"): epochs[np.flatnonzero(groups == g)] for g in np.unique(groups)}
    return prepare_recordings(recordings, opts, group_of={path: path.name for path in recordings})
