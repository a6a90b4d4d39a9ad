"""`eeg2arm prepare`: EEG files read with MNE -> X.npy (N, C, F, T), y.npy, groups.npy and meta.json in one folder.

The files are opened and checked in `eeg2arm.recordings`, their labelled trials cut and turned into features by the
recipe in `eeg2arm.trials`; this module holds the options, `--like` and the writing. meta.json records the recipe,
and `prepare --like META` applies it to new files.

groups.npy holds one group per trial: the index of its file in meta["source_files"] (`--group-by recording`), or of
its subject in meta["group_names"] (`--group-by subject`; see `recordings.subject_of`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from tqdm.auto import tqdm

from .atomic import atomic_folder
from .data import data_fields, load_data_meta
from .errors import UserInputError
from .features import DEFAULT_BANDS, Band, frame_geometry
from .fitting import fit_spatial, recording_alignments
from .recipe import Recipe
from .recordings import (Recording, choose_channels, common_sfreq, open_recording, renamed, require_channels,
                         same_rate, subject_of)
from .spatial import spatial_method
from .trials import Span, class_mapping, cut_trials, event_names, trial_samples

log = logging.getLogger("eeg2arm")

FEATURES = {"bandpower": "log10(mean one-sided Hann periodogram PSD in band, uV^2/Hz)",
            "slow": "mean of the low-passed signal over the frame, uV",
            "csp": "log10(mean square over the frame of each CSP component, band-passed to its band)",
            "csp-tangent": "upper triangle of log(S), off-diagonals x sqrt(2); S the covariance (mean of x x^T) over "
                           "the frame of the whitened CSP components, band-passed to their band"}
GROUP_BY = ("recording", "subject")
LIKE_KEYS = ("eeg2arm_version", "channels", "sfreq", "bands", "frame_window_s", "frame_step_s", "events",
             "classes", "tmin_s", "tmax_s", "epoch_s_for_continuous")


@dataclass(frozen=True)
class PrepareOptions:
    events: tuple[tuple[str, str], ...] = ()  # (annotation or event name, class name); () = every name, sorted
    tmin: float | None = None  # event-locked span [tmin, tmax) s from each onset; None: cut annotations by `window`
    tmax: float | None = None
    window: float = 4.0  # s; long annotations are cut into consecutive windows of this length
    bands: tuple[Band, ...] = DEFAULT_BANDS
    frame_window: float = 0.5  # s
    frame_step: float = 0.25  # s
    channels: tuple[str, ...] | None = None  # None: the EEG channels of the first file (less --reference channels)
    resample: float | None = None  # Hz
    features: tuple[str, ...] = ("bandpower",)  # feature kinds in F order (eeg2arm.recipe)
    slow_cutoff: float = 4.0  # Hz
    reference: str = "none"  # none | average | csd | CH[,CH...]
    montage: str | None = None
    bandpass: tuple[float, float] | None = None  # Hz
    group_by: str = "recording"
    spatial: str | None = None  # "csp:K" / "csp-tangent:K": filter-bank CSP fitted on the labels (eeg2arm.spatial)
    align: str | None = None  # "euclidean" | "mean": each recording's signal re-centred by its own moments
    input_channels: tuple[str, ...] | None = None  # --like: the channels the recipe reads (channels are then fixed)
    sfreq: float | None = None  # --like: the rate the files must have (after --resample)
    csp_filters: tuple | None = None  # --like: the fitted CSP filters (bands, components, channels)

    @property
    def span(self) -> Span:
        return Span(self.tmin, self.tmax, self.window)


def parse_event(text: str) -> tuple[str, str]:
    """'T1=left' -> ('T1', 'left'); 'eyes_open' -> ('eyes_open', 'eyes_open')."""
    name, _, cls = text.partition("=")
    name, cls = name.strip(), (cls.strip() if _ else name.strip())
    if not name or not cls:
        raise UserInputError(f"--event {text!r} must be NAME or NAME=CLASS (e.g. T1=left)")
    return name, cls


def events_onto(given: tuple[tuple[str, str], ...], recipe_events: tuple[tuple[str, str], ...],
                what: str) -> tuple[tuple[str, str], ...]:
    """--event NAME=CLASS under --like: the files' own cue names mapped onto the recipe's classes, one or more for
    each class, in the recipe's label order."""
    classes = list(dict.fromkeys(cls for _, cls in recipe_events))
    named = {cls for _, cls in given}
    foreign, unmapped = sorted(named - set(classes)), [c for c in classes if c not in named]
    if foreign or unmapped:
        problem = f"{foreign[0]} is not one of them" if foreign else f"no --event maps onto {unmapped[0]}"
        raise UserInputError(f"--event under --like maps your files' cue names onto the classes of {what} "
                             f"({', '.join(classes)}): {problem}; give --event NAME=CLASS for each class, e.g. "
                             f"--event left={classes[0]}")
    return tuple(sorted(given, key=lambda event: classes.index(event[1])))


def checked_options(opts: PrepareOptions) -> PrepareOptions:
    """Validate the span options; --tmax alone means --tmin 0."""
    for flag, value in (("--tmin", opts.tmin), ("--tmax", opts.tmax), ("--window", opts.window),
                        ("--frame-window", opts.frame_window), ("--frame-step", opts.frame_step),
                        ("--resample", opts.resample)):
        if value is not None and not np.isfinite(value):
            raise UserInputError(f"{flag} must be a finite number, got {value}")
    if opts.tmin is not None and opts.tmax is None:
        raise UserInputError("--tmin needs --tmax: give both for event-locked trials, or neither to cut by --window")
    if opts.tmax is not None:
        tmin = 0.0 if opts.tmin is None else opts.tmin
        if opts.tmax <= tmin:
            raise UserInputError(f"--tmax ({opts.tmax:g}) must be after --tmin ({tmin:g})")
        opts = dataclasses.replace(opts, tmin=tmin)
    if opts.window <= 0:
        raise UserInputError(f"--window must be positive, got {opts.window:g}")
    if opts.resample is not None and opts.resample <= 0:
        raise UserInputError(f"--resample must be positive, got {opts.resample:g}")
    if opts.group_by not in GROUP_BY:
        raise UserInputError(f"--group-by must be one of {', '.join(GROUP_BY)}, got {opts.group_by!r}")
    if not (np.isfinite(opts.slow_cutoff) and opts.slow_cutoff > 0):
        raise UserInputError(f"--slow-cutoff must be a positive number of Hz, got {opts.slow_cutoff:g}")
    return opts


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_out(out: Path) -> None:
    if out.exists():
        raise UserInputError(f"--out {out} already exists: remove it or choose a new folder")
    if not out.parent.is_dir():
        raise UserInputError(f"--out parent folder does not exist: {out.parent}")


def write_folder(out: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write NAME.npy files and meta.json as the folder `out`, whole or not at all (eeg2arm.atomic)."""
    def write(tmp: Path) -> None:
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", arr)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")

    atomic_folder(out, write)


def options_like(meta_path: str | Path, resample: float | None, group_by: str | None) -> PrepareOptions:
    """The options of the prepare run that wrote `meta_path` (its recipe, channels, events and span)."""
    load_data_meta(meta_path)  # a readable meta.json, or one clear error
    return options_from_meta(json.loads(Path(meta_path).read_text()), resample, group_by, f"--like {meta_path}")


def options_from_meta(meta: dict[str, Any], resample: float | None, group_by: str | None,
                      what: str = "the recipe") -> PrepareOptions:
    """The options of the prepare run that made `meta` (meta.json's dict): its recipe, channels, events and span."""
    missing = [k for k in LIKE_KEYS if k not in meta]
    if missing:
        raise UserInputError(f"{what} lacks {', '.join(missing[:3])}: give the meta.json that `eeg2arm prepare` "
                             f"wrote beside the training X.npy")
    recipe = Recipe.from_fields(data_fields(meta))
    if resample is not None and not same_rate(resample, recipe.sfreq):
        raise UserInputError(f"--resample {resample:g} differs from the {recipe.sfreq:g} Hz of {what}: "
                             f"pass --resample {recipe.sfreq:g}")
    events = tuple((str(name), str(cls)) for name, cls in meta["events"].items())
    return checked_options(PrepareOptions(
        events=events, tmin=meta["tmin_s"], tmax=meta["tmax_s"], window=meta["epoch_s_for_continuous"] or 4.0,
        bands=recipe.bands, frame_window=recipe.frame_window, frame_step=recipe.frame_step,
        channels=recipe.channels, input_channels=recipe.input_channels, resample=resample,
        features=recipe.features, slow_cutoff=recipe.slow_cutoff, reference=recipe.reference,
        montage=recipe.montage, bandpass=recipe.bandpass, sfreq=recipe.sfreq, spatial=recipe.spatial,
        csp_filters=recipe.csp_filters, align=recipe.align, group_by=group_by or meta.get("group_by", "recording")))


def recipe_for(recordings: dict[Path, Recording], opts: PrepareOptions) -> Recipe:
    """The recipe the files go through: at their common rate, from the channels they all have, as opts say."""
    sfreq = common_sfreq(recordings)
    if opts.sfreq is not None and not same_rate(sfreq, opts.sfreq):
        raise UserInputError(f"the files run at {sfreq:g} Hz but the --like recipe was made at {opts.sfreq:g} Hz: "
                             f"pass --resample {opts.sfreq:g}")
    if opts.input_channels is not None:  # --like: the training data's channels, by the names it was made from
        require_channels(recordings, opts.input_channels)
        input_channels, channels = list(opts.input_channels), list(opts.channels)
    else:
        input_channels, channels = choose_channels(recordings, opts.channels, opts.reference, opts.montage)
    return Recipe(sfreq=sfreq, input_channels=tuple(input_channels), channels=tuple(channels),
                  features=opts.features, bands=opts.bands, slow_cutoff=opts.slow_cutoff,
                  frame_window=opts.frame_window, frame_step=opts.frame_step, reference=opts.reference,
                  montage=opts.montage, bandpass=opts.bandpass, spatial=opts.spatial, csp_filters=opts.csp_filters,
                  align=opts.align)


def trial_length(recordings: dict[Path, Recording], opts: PrepareOptions, recipe: Recipe) -> int:
    """Samples per trial: the same in every file, and at least one frame."""
    lengths = {path: trial_samples(path, inst, opts.span) for path, inst in recordings.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{p.name} {n}" for p, n in lengths.items())
        raise UserInputError(f"trials differ in length between files ({listed} samples): cut one span with "
                             f"--tmin/--tmax")
    w = frame_geometry(recipe.sfreq, opts.frame_window, opts.frame_step)[0]
    n = next(iter(lengths.values()))
    if n < w:
        raise UserInputError(f"trials of {n} samples ({n / recipe.sfreq:g} s) are shorter than one frame "
                             f"({opts.frame_window:g} s = {w} samples): use longer epochs or a shorter --frame-window")
    return n


@dataclass(frozen=True)
class Prepared:
    """Labelled trials through one recipe: X (N, C, F, T) float32, y (N,) int64, groups (N,) int64 (indices into
    meta["group_names"]) and meta.json's content, less the source files."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    meta: dict[str, Any]


def prepare(paths: Iterable[str | Path], out: str | Path, opts: PrepareOptions = PrepareOptions(),
            progress: bool | None = None, renames: dict[str, str] | None = None) -> dict[str, Any]:
    """Read EEG files (in sorted path order), their channels renamed by `renames` ({file's name: the recipe's}), cut
    labelled trials, compute the recipe's features and write `out`/.

    Writes X.npy float32 (N, C, F, T), y.npy int64 (N,), groups.npy int64 (N,) (see the module docstring) and
    meta.json; returns the meta dict. `progress=None` shows the bar on a terminal only.
    """
    out = Path(out)
    check_out(out)
    paths = sorted({Path(p) for p in paths}, key=str)
    if not paths:
        raise UserInputError("no input files: give one or more EEG files to prepare")
    opts = checked_options(opts)
    recordings = {path: open_recording(path, opts.resample) for path in paths}
    taken = renamed(recordings, renames or {})
    prepared = prepare_recordings(recordings, opts, progress=progress)
    sources = [{"path": str(p), "sha256": sha256(p), "subject": subject_of(p, inst)} for p, inst in recordings.items()]
    meta = {"eeg2arm_version": version("eeg2arm"), "source_files": sources} | prepared.meta
    if taken:  # the files' own names of the channels meta.json names (prepare --rename)
        meta["channel_renames"] = taken
    write_folder(out, {"X": prepared.X, "y": prepared.y, "groups": prepared.groups}, meta)
    return meta


def prepare_recordings(recordings: dict[Path, Recording], opts: PrepareOptions, group_of: dict[Path, str] | None = None,
                       progress: bool | None = False) -> Prepared:
    """Cut the labelled trials of opened recordings (MNE Raw or Epochs, in the dict's order) and compute the recipe's
    features: what `eeg2arm prepare` does between reading its files and writing them, and what eeg2arm.Decoder does
    with trials in memory. `group_of` names each recording's group (subject or recording; default: opts.group_by);
    learned parts (alignments, CSP filters) are fitted here unless opts carry them (--like)."""
    opts = checked_options(opts)
    recipe = recipe_for(recordings, opts)
    classes, event_class = class_mapping(opts.events, set().union(*map(event_names, recordings.values())))
    n = trial_length(recordings, opts, recipe)
    if group_of is None:
        group_of = {path: subject_of(path, inst) if opts.group_by == "subject" else str(path)
                    for path, inst in recordings.items()}
    group_names = list(dict.fromkeys(group_of.values()))
    if opts.group_by == "subject":
        group_names.sort()
    alignments = recording_alignments(recordings, recipe) if recipe.align else {}
    if recipe.spatial is not None and recipe.csp_filters is None:
        recipe = fit_spatial(recordings, recipe, event_class, opts.span, alignments)

    X, y, groups, sources = [], [], [], []
    for path, inst in tqdm(recordings.items(), desc="prepare", unit="file",
                           disable=None if progress is None else not progress):
        trials = cut_trials(path, inst, event_class, recipe, opts.span, alignments.get(path))
        if not len(trials.labels):
            log.warning("%s: no trials for events %s", path, ", ".join(event_class))
            continue
        X.append(trials.features)
        y.append(trials.labels)
        groups.append(np.full(len(trials.labels), group_names.index(group_of[path]), dtype=np.int64))
        sources += [[str(path), round(float(t), 6)] for t in trials.onsets]
    if not y:
        hint = "use --tmin/--tmax for events shorter than --window" if opts.tmax is None else "check --tmin/--tmax"
        if opts.input_channels is not None:  # --like: the span is the recipe's
            hint = "give recordings whose cues lie a whole trial inside the data (the --like recipe's span)"
        raise UserInputError(f"no trials: the events lie outside the data or are shorter than the span: {hint}")
    counts = np.bincount(np.concatenate(y), minlength=len(classes))
    if not counts.all():
        log.warning("no trials for class %s", ", ".join(c for c, k in zip(classes, counts) if not k))
    X_all = np.concatenate(X)  # (N, C, F, T)
    meta = {
        "eeg2arm_version": version("eeg2arm"),
        "shape": list(X_all.shape),
        **recipe.to_meta(),
        "trial_samples": n,
        "epoch_s_for_continuous": opts.window if opts.tmax is None else None,
        "tmin_s": opts.tmin,
        "tmax_s": opts.tmax,
        "events": {name: classes[i] for name, i in event_class.items()},
        "classes": classes,
        "class_counts": dict(zip(classes, counts.tolist())),
        "group_by": opts.group_by,
        "groups": "index into group_names",
        "group_names": group_names,
        "trial_sources": sources,
        "feature": [FEATURES[spatial_method(recipe.spatial) if recipe.spatial else kind] for kind in recipe.features],
    }
    if alignments:  # each recording's, e.g. for `stream --align-from` on the same subject
        meta["alignment"] = {"method": recipe.align, "recordings": {str(p): a.to_json() for p, a in alignments.items()}}
    return Prepared(X_all, np.concatenate(y), np.concatenate(groups), meta)
