"""`eeg2arm prepare`: EEG files read with MNE -> X.npy (N, C, F, T), y.npy, groups.npy and meta.json in one folder.

Continuous recordings (EDF, BDF, GDF, FIF, BrainVision, EEGLAB, ...) are cut around their annotations; epoched
files (`*-epo.fif`) give their stored epochs. The feature recipe (`eeg2arm.recipe`: reference, causal filters,
features) runs over a continuous recording from its first sample before trials are cut, over an epoch from its own
first sample. meta.json records the recipe, and `prepare --like META` applies it to new files.

groups.npy holds one group per trial: the index of its file in meta["source_files"] (`--group-by recording`), or of
its subject in meta["group_names"] (`--group-by subject`). A file's subject is the `his_id` of its subject_info
(MNE's reading of the EDF patient field or the FIF subject) unless that is empty or the EDF+ placeholder "X", and
otherwise the name of the file's folder (e.g. S001 for eegmmidb/S001/S001R04.edf).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Iterable

import mne
import numpy as np
from tqdm.auto import tqdm

from .errors import UserInputError
from .data import load_data_meta
from .features import DEFAULT_BANDS, Band, frame_geometry
from .recipe import CausalChain, Recipe, montage_names, reference_channels

log = logging.getLogger("eeg2arm")

EPOCHS_SUFFIXES = ("-epo.fif", "_epo.fif", "-epo.fif.gz", "_epo.fif.gz")
READABLE = "EDF, BDF, GDF, FIF, BrainVision .vhdr, EEGLAB .set, or MNE epochs *-epo.fif"
FEATURES = {"bandpower": "log10(mean one-sided Hann periodogram PSD in band, uV^2/Hz)",
            "slow": "mean of the low-passed signal over the frame, uV"}
TRUNCATED = ("does not match the file size", "Invalid tag with only")  # MNE's warnings: EDF/BDF/GDF, FIF cut short
GROUP_BY = ("recording", "subject")
BLOCK_S = 60.0  # a continuous recording goes through the recipe's filters in pieces of this length
LIKE_KEYS = ("eeg2arm_version", "channels", "sfreq", "bands", "frame_window_s", "frame_step_s", "events",
             "classes", "tmin_s", "tmax_s", "epoch_s_for_continuous")
Recording = mne.io.BaseRaw | mne.BaseEpochs


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
    input_channels: tuple[str, ...] | None = None  # --like: the channels the recipe reads (channels are then fixed)
    sfreq: float | None = None  # --like: the rate the files must have (after --resample)


@dataclass(frozen=True)
class Trials:
    """The trials cut from one file: features (n, C, F, T), class indices (n,), onsets (n,) in s from the start."""

    features: np.ndarray
    labels: np.ndarray
    onsets: np.ndarray


def parse_event(text: str) -> tuple[str, str]:
    """'T1=left' -> ('T1', 'left'); 'eyes_open' -> ('eyes_open', 'eyes_open')."""
    name, _, cls = text.partition("=")
    name, cls = name.strip(), (cls.strip() if _ else name.strip())
    if not name or not cls:
        raise UserInputError(f"--event {text!r} must be NAME or NAME=CLASS (e.g. T1=left)")
    return name, cls


def is_epochs_file(path: Path) -> bool:
    return path.name.endswith(EPOCHS_SUFFIXES)


def open_recording(path: Path, resample: float | None) -> Recording:
    """Read one file lazily with MNE (epochs by the MNE name convention, else continuous); resample if asked."""
    if not path.is_file():
        raise UserInputError(f"input file not found: {path}")
    try:
        # MNE's warnings go to a log kept to spot a file cut short (MNE reads what is there and only warns)
        with warnings.catch_warnings(), mne.utils.catch_logging(verbose="warning") as logged:
            warnings.simplefilter("ignore")
            inst = (mne.read_epochs(path, preload=False, verbose="warning") if is_epochs_file(path)
                    else mne.io.read_raw(path, preload=False, verbose="warning"))
    except Exception as e:  # noqa: BLE001 - MNE's readers raise many types (even AssertionError) on foreign files
        detail = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserInputError(f"cannot read {path} ({type(e).__name__}{': ' + detail if detail else ''}): give a "
                             f"readable {READABLE}") from None
    cut = [line for line in logged.getvalue().splitlines() if any(sign in line for sign in TRUNCATED)]
    if cut:
        raise UserInputError(f"{path} is truncated (MNE: {cut[0][:150]}): give the complete recording")
    if resample is not None and not np.isclose(inst.info["sfreq"], resample):
        inst.load_data(verbose="error").resample(resample, verbose="error")
    return inst


def event_names(inst: Recording) -> set[str]:
    """Class-candidate names in a file: its event_id names (epochs) or annotation descriptions (continuous)."""
    if isinstance(inst, mne.BaseEpochs):
        return set(inst.event_id)
    return set(inst.annotations.description)


def class_mapping(events: tuple[tuple[str, str], ...], found: set[str]) -> tuple[list[str], dict[str, int]]:
    """(class names in label order, {event name: class index}); the order of --event defines the label order."""
    if not events:  # every name except MNE's BAD/EDGE markers, sorted
        events = tuple((n, n) for n in sorted(found) if not n.lower().startswith(("bad", "edge")))
    names = [name for name, _ in events]
    if len(set(names)) != len(names):
        raise UserInputError(f"--event names repeat: {names}; give each annotation once")
    missing = [n for n in names if n not in found]
    if len(missing) == len(names):
        raise UserInputError(f"no matching events: --event {', '.join(names) or '(every name)'} matches no annotation "
                             f"or event in the files (found: {', '.join(sorted(found)) or 'none'})")
    if missing:  # e.g. a held-out file of one class, prepared with the training set's full label order
        log.warning("--event %s matches no annotation or event in the files", ", ".join(missing))
    classes = list(dict.fromkeys(cls for _, cls in events))
    return classes, {name: classes.index(cls) for name, cls in events}


def eeg_channels(inst: Recording) -> list[str]:
    return [inst.ch_names[i] for i in mne.pick_types(inst.info, eeg=True, exclude="bads")]


def pick_channels(recordings: dict[Path, Recording], channels: tuple[str, ...] | None) -> list[str]:
    """The channels to keep, in output order: --channels, or the EEG channels of the first file (all must match)."""
    if channels is not None:
        if len(set(channels)) != len(channels):
            raise UserInputError(f"--channels names a channel twice: {', '.join(channels)}")
        for path, inst in recordings.items():
            lacking = [ch for ch in channels if ch not in inst.ch_names]
            if lacking:
                raise UserInputError(f"{path} has no channel {', '.join(lacking[:5])}"
                                     f"{' ...' if len(lacking) > 5 else ''}: pass --channels with channels that "
                                     f"every file has")
        return list(channels)
    (first, inst), *rest = recordings.items()
    chosen = eeg_channels(inst)
    if not chosen:
        raise UserInputError(f"{first} has no EEG channels: name the channels to use with --channels")
    for path, other in rest:
        theirs = eeg_channels(other)
        if set(theirs) != set(chosen):
            lacking, extra = [c for c in chosen if c not in theirs], [c for c in theirs if c not in chosen]
            common = [c for c in chosen if all(c in eeg_channels(r) for r in recordings.values())]
            raise UserInputError(f"channels differ between files: {path} lacks {lacking[:5]} and adds {extra[:5]} "
                                 f"compared with {first}; pass --channels with the channels to keep "
                                 f"({len(common)} are common to all files)")
    return chosen


def require_channels(recordings: dict[Path, Recording], channels: tuple[str, ...], why: str) -> None:
    for path, inst in recordings.items():
        lacking = [ch for ch in channels if ch not in inst.ch_names]
        if lacking:
            raise UserInputError(f"{path} has no channel {', '.join(lacking[:5])}{' ...' if len(lacking) > 5 else ''}"
                                 f": {why}")


def choose_channels(recordings: dict[Path, Recording], opts: PrepareOptions) -> tuple[list[str], list[str]]:
    """(input channels, read from every file by its own names; the model's C channels, in X's order)."""
    if opts.input_channels is not None:  # --like: the training data's channels
        require_channels(recordings, opts.input_channels, "the --like recipe needs every channel it was made from")
        return list(opts.input_channels), list(opts.channels)
    if opts.reference == "none" and opts.montage is None:  # no spatial map: read exactly the channels kept
        chosen = pick_channels(recordings, opts.channels)
        return chosen, chosen
    eeg = pick_channels(recordings, None)  # a reference reads every EEG channel, the same in every file
    rename = montage_names(eeg, opts.montage) if opts.montage else {c: c for c in eeg}
    refs = reference_channels(opts.reference)
    named = {std: c for c, std in rename.items()}  # the montage's spelling -> the recording's name
    lacking = [c for c in (*refs, *(opts.channels or ())) if c not in named]
    if lacking:
        raise UserInputError(f"--channels/--reference name {', '.join(lacking[:5])}, which are not EEG channels of "
                             f"{next(iter(recordings))} (it has {', '.join(list(named)[:8])} ...)")
    channels = list(opts.channels or [rename[c] for c in eeg if rename[c] not in refs])
    return (eeg if opts.reference != "none" else [named[c] for c in channels]), channels


def trial_span(opts: PrepareOptions, sfreq: float) -> tuple[float, int]:
    """(tmin in s, samples per trial) cut around each onset of a continuous recording."""
    if opts.tmax is None:
        return 0.0, round(opts.window * sfreq)
    return opts.tmin, round((opts.tmax - opts.tmin) * sfreq)


def trial_samples(path: Path, inst: Recording, opts: PrepareOptions) -> int:
    """Samples per trial this file will give; check an event-locked span lies inside stored epochs."""
    sfreq = inst.info["sfreq"]
    if not isinstance(inst, mne.BaseEpochs):
        return trial_span(opts, sfreq)[1]
    if opts.tmax is None:
        return len(inst.times)
    tmin, n = trial_span(opts, sfreq)
    if tmin < inst.tmin - 0.5 / sfreq or tmin + (n - 1) / sfreq > inst.tmax + 0.5 / sfreq:
        raise UserInputError(f"--tmin/--tmax [{opts.tmin:g}, {opts.tmax:g}) s lies outside the epochs stored in "
                             f"{path} ([{inst.tmin:g}, {inst.tmax + 1 / sfreq:g}) s): choose a span inside them")
    return n


def epochs_trials(path: Path, epochs: mne.BaseEpochs, event_class: dict[str, int], recipe: Recipe,
                  opts: PrepareOptions) -> Trials:
    """The stored epochs whose event is mapped to a class, in file order, each through the recipe from its own first
    sample (then cropped to --tmin/--tmax if given)."""
    sfreq = epochs.info["sfreq"]
    code_class = {code: event_class[name] for name, code in epochs.event_id.items() if name in event_class}
    keep = np.flatnonzero(np.isin(epochs.events[:, 2], list(code_class)))
    if not keep.size:
        return Trials(np.empty((0, len(recipe.channels), recipe.n_features, 0)), np.empty(0, np.int64), np.empty(0))
    epochs = epochs[keep]
    signals = CausalChain(recipe).push(epochs.get_data(picks=list(recipe.input_channels), units="uV",
                                                       verbose="error"))  # {kind: (n, C, S)}
    if opts.tmax is not None:
        tmin, n = trial_span(opts, sfreq)
        start = round((tmin - epochs.tmin) * sfreq)
        signals = {kind: x[..., start:start + n] for kind, x in signals.items()}
    labels = np.array([code_class[c] for c in epochs.events[:, 2]], dtype=np.int64)
    return Trials(recipe.frames(signals), labels, epochs.events[:, 0] / sfreq)


def continuous_signals(raw: mne.io.BaseRaw, recipe: Recipe, starts: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """The recipe's signals {kind: (N, C, n)} of the trials [start, start + n) (samples from the recording's first),
    filtered causally from the recording's first sample. The recording goes through in BLOCK_S pieces, so memory
    holds the trials and one piece."""
    chain, block = CausalChain(recipe), round(BLOCK_S * raw.info["sfreq"])
    out: dict[str, np.ndarray] = {}
    for b0 in range(0, int(starts.max()) + n, block):
        b1 = min(b0 + block, int(starts.max()) + n)
        piece = chain.push(raw.get_data(picks=list(recipe.input_channels), start=b0, stop=b1, units="uV",
                                        verbose="error"))  # {kind: (C, b1 - b0)}
        for kind, x in piece.items():
            trials = out.setdefault(kind, np.empty((len(starts), x.shape[0], n)))
            for i, t0 in enumerate(starts):  # the part of trial i inside this piece
                lo, hi = max(t0, b0), min(t0 + n, b1)
                if lo < hi:
                    trials[i, :, lo - t0:hi - t0] = x[:, lo - b0:hi - b0]
    return out


def raw_trials(path: Path, raw: mne.io.BaseRaw, event_class: dict[str, int], recipe: Recipe,
               opts: PrepareOptions) -> Trials:
    """Trials from annotations: [tmin, tmax) around each onset, or each annotation cut into `window` pieces."""
    sfreq = raw.info["sfreq"]
    codes = {name: i + 1 for i, name in enumerate(event_class)}
    # events_from_annotations places onsets right for any first_samp and meas_date. Its chunk_duration option does
    # not (MNE 1.13 adds first_samp twice when the annotations have no orig_time), so windows are cut here.
    events, _ = mne.events_from_annotations(raw, event_id=codes, use_rounding=True, verbose="error")
    tmin, n = trial_span(opts, sfreq)
    if opts.tmax is None:  # consecutive non-overlapping windows from each onset; an incomplete last one is dropped
        ann = raw.annotations
        pieces = np.floor(ann.duration[np.isin(ann.description, list(codes))] / opts.window + 1e-9).astype(int)
        assert len(pieces) == len(events), "events_from_annotations keeps one event per selected annotation"
        events = np.array([[start + k * n, 0, code] for (start, _, code), p in zip(events, pieces)
                           for k in range(p)], dtype=np.int64).reshape(-1, 3)
    present = {name: code for name, code in codes.items() if code in events[:, 2]}
    empty = Trials(np.empty((0, len(recipe.channels), recipe.n_features, 0)), np.empty(0, np.int64), np.empty(0))
    if not present:
        return empty
    try:  # MNE decides which trials lie inside the data and off BAD annotations; tmax includes its sample
        epochs = mne.Epochs(raw, events, present, tmin=tmin, tmax=tmin + (n - 1) / sfreq, baseline=None,
                            picks=list(recipe.input_channels), preload=False, verbose="error").drop_bad(verbose="error")
    except ValueError as e:
        raise UserInputError(f"cannot cut trials from {path} ({str(e).splitlines()[0]}): check the annotations "
                             f"and --tmin/--tmax/--window") from None
    if len(epochs) < len(events):
        log.warning("%s: %d of %d trials dropped (outside the data or overlapping BAD annotations)", path,
                    len(events) - len(epochs), len(events))
    if not len(epochs):
        return empty
    starts = epochs.events[:, 0] - raw.first_samp + round(tmin * sfreq)  # samples from the recording's first
    code_class = {codes[name]: event_class[name] for name in present}
    labels = np.array([code_class[c] for c in epochs.events[:, 2]], dtype=np.int64)
    onsets = (epochs.events[:, 0] - raw.first_samp) / sfreq  # s from the first sample of the recording
    return Trials(recipe.frames(continuous_signals(raw, recipe, starts, n)), labels, onsets)


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


def common_sfreq(recordings: dict[Path, Recording]) -> float:
    rates = {path: inst.info["sfreq"] for path, inst in recordings.items()}
    first = next(iter(rates.values()))
    if not all(np.isclose(r, first, rtol=1e-9) for r in rates.values()):
        listed = ", ".join(f"{p.name} {r:g} Hz" for p, r in rates.items())
        raise UserInputError(f"sampling rates differ between files ({listed}): pass --resample RATE")
    return float(first)


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
    """Write NAME.npy files and meta.json into a temp folder beside `out`, then rename it: never a partial folder."""
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", arr)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def subject_of(path: Path, inst: Recording) -> str:
    """The subject of a recording (module docstring): subject_info's his_id, else the file's folder name."""
    his_id = str((inst.info.get("subject_info") or {}).get("his_id") or "").strip()
    return his_id if his_id and his_id.upper() != "X" else path.resolve().parent.name


def options_like(meta_path: str | Path, resample: float | None, group_by: str | None) -> PrepareOptions:
    """The options of the prepare run that wrote `meta_path` (its recipe, channels, events and span)."""
    fields = load_data_meta(meta_path)
    meta = json.loads(Path(meta_path).read_text())
    missing = [k for k in LIKE_KEYS if k not in meta]
    if missing:
        raise UserInputError(f"--like {meta_path} lacks {', '.join(missing[:3])}: give the meta.json that "
                             f"`eeg2arm prepare` wrote beside the training X.npy")
    recipe = Recipe.from_fields(fields)
    if resample is not None and not np.isclose(resample, recipe.sfreq):
        raise UserInputError(f"--resample {resample:g} differs from the {recipe.sfreq:g} Hz of the --like recipe: "
                             f"pass --resample {recipe.sfreq:g}")
    events = tuple((str(name), str(cls)) for name, cls in meta["events"].items())
    return checked_options(PrepareOptions(
        events=events, tmin=meta["tmin_s"], tmax=meta["tmax_s"], window=meta["epoch_s_for_continuous"] or 4.0,
        bands=recipe.bands, frame_window=recipe.frame_window, frame_step=recipe.frame_step,
        channels=recipe.channels, input_channels=recipe.input_channels, resample=resample,
        features=recipe.features, slow_cutoff=recipe.slow_cutoff, reference=recipe.reference,
        montage=recipe.montage, bandpass=recipe.bandpass, sfreq=recipe.sfreq,
        group_by=group_by or meta.get("group_by", "recording")))


def prepare(paths: Iterable[str | Path], out: str | Path, opts: PrepareOptions = PrepareOptions(),
            progress: bool | None = None) -> dict[str, Any]:
    """Read EEG files (in sorted path order), cut labelled trials, compute the recipe's features and write `out`/.

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
    sfreq = common_sfreq(recordings)
    if opts.sfreq is not None and not np.isclose(sfreq, opts.sfreq, rtol=1e-9):
        raise UserInputError(f"the files run at {sfreq:g} Hz but the --like recipe was made at {opts.sfreq:g} Hz: "
                             f"pass --resample {opts.sfreq:g}")
    input_channels, channels = choose_channels(recordings, opts)
    recipe = Recipe(sfreq=sfreq, input_channels=tuple(input_channels), channels=tuple(channels),
                    features=opts.features, bands=opts.bands, slow_cutoff=opts.slow_cutoff,
                    frame_window=opts.frame_window, frame_step=opts.frame_step, reference=opts.reference,
                    montage=opts.montage, bandpass=opts.bandpass)
    classes, event_class = class_mapping(opts.events, set().union(*map(event_names, recordings.values())))
    lengths = {path: trial_samples(path, inst, opts) for path, inst in recordings.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{p.name} {n}" for p, n in lengths.items())
        raise UserInputError(f"trials differ in length between files ({listed} samples): cut one span with "
                             f"--tmin/--tmax")
    w = frame_geometry(sfreq, opts.frame_window, opts.frame_step)[0]
    n = next(iter(lengths.values()))
    if n < w:
        raise UserInputError(f"trials of {n} samples ({n / sfreq:g} s) are shorter than one frame "
                             f"({opts.frame_window:g} s = {w} samples): use longer epochs or a shorter --frame-window")
    subjects = {path: subject_of(path, inst) for path, inst in recordings.items()}
    group_names = sorted(set(subjects.values())) if opts.group_by == "subject" else [str(p) for p in paths]

    X, y, groups, sources = [], [], [], []
    for path, inst in tqdm(recordings.items(), desc="prepare", unit="file",
                           disable=None if progress is None else not progress):
        cut = epochs_trials if isinstance(inst, mne.BaseEpochs) else raw_trials
        trials = cut(path, inst, event_class, recipe, opts)
        if not len(trials.labels):
            log.warning("%s: no trials for events %s", path, ", ".join(event_class))
            continue
        X.append(trials.features)
        y.append(trials.labels)
        group = group_names.index(subjects[path] if opts.group_by == "subject" else str(path))
        groups.append(np.full(len(trials.labels), group, dtype=np.int64))
        sources += [[str(path), round(float(t), 6)] for t in trials.onsets]
    if not y:
        hint = "use --tmin/--tmax for events shorter than --window" if opts.tmax is None else "check --tmin/--tmax"
        raise UserInputError(f"no trials: the events lie outside the data or are shorter than the span: {hint}")
    counts = np.bincount(np.concatenate(y), minlength=len(classes))
    if not counts.all():
        log.warning("no trials for class %s", ", ".join(c for c, k in zip(classes, counts) if not k))
    X_all = np.concatenate(X)  # (N, C, F, T)
    meta = {
        "eeg2arm_version": version("eeg2arm"),
        "source_files": [{"path": str(p), "sha256": sha256(p), "subject": subjects[p]} for p in paths],
        "shape": list(X_all.shape),
        "sfreq": sfreq,
        "channels": channels,
        "input_channels": input_channels,
        "features": list(recipe.features),
        "bands": [list(b) for b in recipe.feature_bands],
        "reference": recipe.reference,
        "montage": recipe.montage,
        "bandpass": list(recipe.bandpass) if recipe.bandpass else None,
        "frame_window_s": opts.frame_window,
        "frame_step_s": opts.frame_step,
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
        "feature": [FEATURES[kind] for kind in recipe.features],
    }
    write_folder(out, {"X": X_all, "y": np.concatenate(y), "groups": np.concatenate(groups)}, meta)
    return meta
