"""Cross-validated accuracy on the shared raw EEG: EEGModel (its recipes) against the field's methods and chance.

Every fold of every set splits the same raw trials for every method:
  * EEGModel:   eeg2arm.Decoder with the set's recipe in benchmarks/recipes.toml, fitted on the training files
                (opened as `eeg2arm prepare` opens them) and scored on the test files, prepared like the training
                data (`prepare --like`): what `--commands` prints; model selection only on train's own validation split;
  * its features + LR: the very windows EEGModel is given on the fold, read by a logistic regression (its
                regularization chosen on 5 contiguous inner folds of the training windows, every column scaled):
                what the model adds to, or loses from, its features (where the recipe's network is off, the
                difference is how the two fit the same regression: the scaling and the penalty);
  * the field's methods (benchmarks/peers.py): CSP + LDA, FBCSP + LDA, TS + LR, EA + TS + LR (cross-subject rows),
                EEGNet and ShallowFBCSPNet (braindecode), MiniRocket (aeon), chance.
Folds: stratified 5-fold for the aeon sets (FingerMovements: 5 contiguous blocks in recording order), 40 s blocks
for eyes_open_closed (one eyes-open and one eyes-closed block per test fold), leave one imagery run out per subject
for eegmmidb_within (mean over subjects), three subjects left out per fold for eegmmidb_cross. The eegmmidb_*_mu
sets are the motor rhythm: there every method sees only the recipe's --channels (the FC, C and CP rows), none of
the frontal and temporal channels that carry the eye movements most. A row with `executed = true` also trains every method on the executed runs (eegmmidb_executed: R03, R07,
R11) of its training subjects; testing stays on imagery. eegmmidb_new_subject_mu: the cross-subject motor-rhythm
model of each fold meets a subject it never saw, aligned from that subject's own unlabelled signal and calibrated on
its first CALIBRATION trials (`eeg2arm calibrate`; the peers train on those trials), tested on the subject's other
imagery trials; mean over the 12 subjects.

    pip install -e '.[bench]'                      # the peers: pyriemann, aeon, braindecode
    .venv/bin/python benchmarks/accuracy.py         # every row, every peer but the deep ones (~22 min on 2 cores)
    .venv/bin/python benchmarks/accuracy.py --deep  # + EEGNet and ShallowFBCSPNet on the motor-rhythm rows (~+20 min)
    .venv/bin/python benchmarks/accuracy.py --all   # the deep peers on every row
    .venv/bin/python benchmarks/accuracy.py --sets KDD_Example SelfRegulationSCP1 --methods eegmodel chance
    .venv/bin/python benchmarks/accuracy.py --commands   # the shell commands of every recipe (docs/accuracy.md)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # per-epoch bars would drown the table; tqdm reads it on import

import click
import mne
import numpy as np
import scipy
import sklearn
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from eeg2arm import Decoder
from eeg2arm.cli import cli
from eeg2arm.cli.data import recipe_params
from eeg2arm.estimator import prepare_options, recordings_of
from eeg2arm.readout import logistic_cv, quiet_fit
from eeg2arm.train import validates
from eeg2arm.prepare import options_from_meta, prepare_recordings
from eeg2arm.recordings import open_recording, subject_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402
from machine import machine_line  # noqa: E402
from peers import DEEP, applies, peer_accuracy  # noqa: E402

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("EEG2ARM_SHARED", HERE.parents[1] / "shared"))
RAW = SHARED / "data" / "raw"
MOTOR_RHYTHM = ("eegmmidb_within_mu", "eegmmidb_cross_mu", "eegmmidb_new_subject_mu")
SETS = ("eyes_open_closed", "SelfRegulationSCP1", "FingerMovements", "KDD_Example", "eegmmidb_within",
        "eegmmidb_cross", *MOTOR_RHYTHM)
SUBJECTS = tuple(f"S{i:03d}" for i in range(1, 13))
RUNS = ("R04", "R08", "R12")  # imagery
EXECUTED = ("R03", "R07", "R11")  # the same cues, the movement made (eegmmidb_executed)
METHODS = ("eegmodel", "readout", "csp", "fbcsp", "ts", "ea_ts", "eegnet", "shallow", "minirocket", "chance")
HEADERS = {"eegmodel": "EEGModel", "readout": "its features + LR", "csp": "CSP + LDA", "fbcsp": "FBCSP + LDA",
           "ts": "TS + LR", "ea_ts": "EA + TS + LR", "eegnet": "EEGNet", "shallow": "ShallowFBCSPNet",
           "minirocket": "MiniRocket", "chance": "chance"}
OWN = ("eegmodel", "readout")  # the recipe's features: every row
NEW_SUBJECT_PEERS = ("csp", "fbcsp", "ts", "ea_ts", "chance")  # one fit per new subject on ~800 trials: the fast ones


@dataclass
class Fold:
    """One split: the files EEGModel is prepared from, and the same trials as arrays (n, C, S) in µV for the peers."""

    train_files: list[Path]
    test_files: list[Path]
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    subject: str = ""  # eegmmidb_within(_mu): whose fold this is
    g_train: np.ndarray | None = None  # eegmmidb: the subject of each trial (what EA aligns by)
    g_test: np.ndarray | None = None


def eeg2arm(*args: object) -> str:
    """Run one `eeg2arm` command in this process (as the shell would) and return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            cli.main([str(a) for a in args], prog_name="eeg2arm", standalone_mode=False)
        except click.ClickException as e:
            raise SystemExit(f"eeg2arm {args[0]} failed: {e.format_message()}") from None
    return out.getvalue()


def prepare_params(prepare_args: list[str]) -> dict:
    """The recipe's prepare arguments as `eeg2arm prepare` itself parses them (a --recipe NAME filled in)."""
    return recipe_params(prepare_args)


def event_classes(prepare_args: list[str]) -> dict[str, int]:
    """{event name: label} from a recipe's --event NAME[=CLASS] list (its order is the label order)."""
    pairs = [event.partition("=") for event in prepare_params(prepare_args)["events"]]
    classes = list(dict.fromkeys(cls or name for name, _, cls in pairs))
    return {name: classes.index(cls or name) for name, _, cls in pairs}


def span(prepare_args: list[str]) -> tuple[float, float]:
    params = prepare_params(prepare_args)
    return float(params["tmin"]), float(params["tmax"])


def kept_channels(prepare_args: list[str]) -> tuple[str, ...] | None:
    """The recipe's --channels (None: every EEG channel)."""
    channels = prepare_params(prepare_args)["channels"]
    return tuple(c.strip() for c in channels.split(",")) if channels else None


def within(name: str) -> bool:
    return name.startswith("eegmmidb_within")


IN_ORDER = ("FingerMovements",)  # its slow potentials drift over the session: test on contiguous blocks of trials


def epochs_folds(name: str, classes: dict[str, int], tmp: Path) -> Iterator[Fold]:
    """Stratified 5-fold over the stored epochs (IN_ORDER sets: 5 contiguous blocks in recording order, so no test
    trial has its neighbours in training); each side is written as its own -epo.fif for prepare."""
    epochs = mne.read_epochs(RAW / name / f"{name}_TRAIN-epo.fif", preload=True, verbose="error")
    code_class = {code: classes[ev] for ev, code in epochs.event_id.items()}
    y = np.array([code_class[c] for c in epochs.events[:, 2]])
    X = epochs.get_data(copy=True) * 1e6  # (N, C, S) µV
    splitter = KFold(5) if name in IN_ORDER else StratifiedKFold(5, shuffle=True, random_state=0)
    for k, (tr, te) in enumerate(splitter.split(X, y)):
        files = []
        for side, idx in (("train", tr), ("test", te)):
            files.append(tmp / f"fold{k}-{side}-epo.fif")
            epochs[idx].save(files[-1], overwrite=True, verbose="error")
        yield Fold([files[0]], [files[1]], X[tr], y[tr], X[te], y[te])


def eyes_folds(classes: dict[str, int], tmp: Path) -> Iterator[Fold]:
    """40 s blocks of the two recordings, saved as files; each fold tests one eyes-open and one eyes-closed block."""
    blocks, labels, trials = [], [], []
    for path in sorted((RAW / "eyes_open_closed").glob("*_raw.fif")):
        raw = mne.io.read_raw_fif(path, preload=True, verbose="error")
        label = classes[raw.annotations.description[0]]
        sfreq, n = raw.info["sfreq"], round(4.0 * raw.info["sfreq"])
        for b in range(5):
            block = raw.copy().crop(40.0 * b, 40.0 * (b + 1), include_tmax=False)
            blocks.append(tmp / f"{path.name[:-8]}_block{b}_raw.fif")
            block.save(blocks[-1], overwrite=True, verbose="error")
            data = block.get_data() * 1e6  # (C, S) µV; prepare cuts the annotation into consecutive 4 s windows
            trials.append(np.stack([data[:, i * n:(i + 1) * n] for i in range(round(40.0 * sfreq) // n)]))
            labels.append(label)
    labels = np.array(labels)
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(labels, labels):
        def side(idx: np.ndarray) -> tuple[list[Path], np.ndarray, np.ndarray]:
            return ([blocks[i] for i in idx], np.concatenate([trials[i] for i in idx]),
                    np.concatenate([np.full(len(trials[i]), labels[i]) for i in idx]))
        (f_tr, X_tr, y_tr), (f_te, X_te, y_te) = side(tr), side(te)
        yield Fold(f_tr, f_te, X_tr, y_tr, X_te, y_te)


def run_file(subject: str, run: str) -> Path:
    return RAW / ("eegmmidb" if run in RUNS else "eegmmidb_executed") / subject / f"{subject}{run}.edf"


def edf_trials(path: Path, classes: dict[str, int], tmin: float, tmax: float,
               channels: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The cue-locked trials [tmin, tmax) of one EEGMMIDB run, in µV: these channels (matched as prepare's --montage
    does, ignoring case and dots: C3 is `C3..`), or all EEG channels in file order."""
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    if channels is not None:
        names = {c.strip(" .").lower(): c for c in raw.ch_names}
        raw.pick([names[c.lower()] for c in channels])
    data, n = raw.get_data() * 1e6, round((tmax - tmin) * raw.info["sfreq"])
    starts, labels = cues_of(raw, classes, tmin)
    whole = starts + n <= data.shape[1]
    return np.stack([data[:, a0:a0 + n] for a0 in starts[whole]]), labels[whole]


def cues_of(raw: mne.io.BaseRaw, classes: dict[str, int], tmin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(sample of each cue the recipe's --event names, plus tmin; its class), in the recording's order."""
    picked = [(round((a["onset"] - raw.first_time + tmin) * raw.info["sfreq"]), classes[a["description"]])
              for a in raw.annotations if a["description"] in classes]
    return np.array([s for s, _ in picked], dtype=int), np.array([c for _, c in picked], dtype=int)


class EegmmidbTrials:
    """Every run's cue-locked trials of a row's subjects, read once: what folds are made of."""

    def __init__(self, prepare_args: list[str], subjects: tuple[str, ...], executed: bool):
        classes, (tmin, tmax) = event_classes(prepare_args), span(prepare_args)
        self.runs = {(s, r): run_file(s, r) for s in subjects for r in RUNS + (EXECUTED if executed else ())}
        self.trials = {key: edf_trials(path, classes, tmin, tmax, kept_channels(prepare_args))
                       for key, path in self.runs.items()}

    def fold(self, train: list, test: list, subject: str = "") -> Fold:
        def side(keys: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return (np.concatenate([self.trials[k][0] for k in keys]), np.concatenate([self.trials[k][1] for k in keys]),
                    np.concatenate([[k[0]] * len(self.trials[k][1]) for k in keys]))
        (X_tr, y_tr, g_tr), (X_te, y_te, g_te) = side(train), side(test)
        return Fold([self.runs[k] for k in train], [self.runs[k] for k in test], X_tr, y_tr, X_te, y_te, subject,
                    g_tr, g_te)


def eegmmidb_folds(name: str, prepare_args: list[str], subjects: tuple[str, ...], executed: bool) -> Iterator[Fold]:
    data = EegmmidbTrials(prepare_args, subjects, executed)
    extra = EXECUTED if executed else ()
    if within(name):  # one model per subject, trained on two imagery runs (and its executed runs), tested on the third
        for s in subjects:
            for r in RUNS:
                yield data.fold([(s, q) for q in RUNS if q != r] + [(s, q) for q in extra], [(s, r)], s)
    else:  # one model across subjects, tested on subjects it never saw
        for tr, te in KFold(4).split(subjects):
            yield data.fold([(subjects[i], r) for i in tr for r in RUNS + extra],
                            [(subjects[i], r) for i in te for r in RUNS])


def folds(name: str, recipe: dict, tmp: Path, subjects: tuple[str, ...]) -> tuple[Iterator[Fold], str]:
    prepare_args, executed = recipe["prepare"], recipe.get("executed", False)
    classes = event_classes(prepare_args)
    plus = " (+ executed runs)" if executed else ""
    if name == "eyes_open_closed":
        return eyes_folds(classes, tmp), "40 s blocks, 5 folds"
    if within(name):
        return eegmmidb_folds(name, prepare_args, subjects, executed), \
            f"leave one run out, {len(subjects)} subjects{plus}"
    if name.startswith("eegmmidb_cross"):
        return eegmmidb_folds(name, prepare_args, subjects, executed), \
            f"{len(subjects) // 4} subjects left out, 4 folds{plus}"
    return epochs_folds(name, classes, tmp), "5 blocks in recording order" if name in IN_ORDER else "stratified 5-fold"


def by_subject(recipe: dict) -> bool:
    """Whether the recipe aligns and splits by subject (prepare --group-by subject), not by recording."""
    return prepare_params(recipe["prepare"])["group_by"] == "subject"


def training_side(fold: Fold, recipe: dict) -> tuple[list, list | None]:
    """The fold's training files opened as `prepare` opens them, and their groups when the recipe aligns or splits by
    subject (else None)."""
    train = opened(fold.train_files)
    return list(train.values()), [group for _, group in train] if by_subject(recipe) else None


def test_side(fold: Fold, recipe: dict) -> list[list]:
    """The fold's test files opened, in the groups `prepare --like` aligns together."""
    test: dict[str, list] = {}
    per_subject = by_subject(recipe)
    for (path, subject), recording in opened(fold.test_files).items():
        test.setdefault(subject if per_subject else str(path), []).append(recording)
    return list(test.values())


def recipe_decoder(recipe: dict) -> Decoder:
    """An unfitted Decoder of a recipes.toml row: its prepare and train arguments, its validation grouping."""
    return Decoder({"prepare": recipe["prepare"], "train": recipe["train"], "groups": recipe["groups"]})


def fitted_decoder(fold: Fold, recipe: dict) -> Decoder:
    """The recipe's Decoder fitted on one fold's training files, as `prepare` -> `train` would."""
    train, groups = training_side(fold, recipe)
    return recipe_decoder(recipe).fit(train, groups=groups)


def eegmodel_accuracy(fold: Fold, recipe: dict) -> float:
    """The recipe's Decoder fitted on one fold's training files and scored on its test files, as `prepare` ->
    `train` -> `prepare --like` -> `evaluate` would (files in sorted order, grouped as --group-by says)."""
    decoder, test = fitted_decoder(fold, recipe), test_side(fold, recipe)
    predicted = np.concatenate([decoder.predict(recordings) for recordings in test])
    if len(predicted) != len(fold.y_test):  # the peers must score the very same trials
        raise SystemExit(f"the recipe cuts {len(predicted)} test trials, the peers {len(fold.y_test)}")
    return float(np.mean(predicted == decoder.classes_[fold.y_test]))


def recipe_windows(fold: Fold, recipe: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test): the windows (N, C, F, T) EEGModel is given on a fold, prepared as
    Decoder.fit prepares the training files (fitting the recipe's filters and alignments) and `prepare --like`
    the test files."""
    opts = prepare_options(recipe["prepare"])
    (train, groups), test = training_side(fold, recipe), test_side(fold, recipe)
    recordings, group_of = recordings_of(train, groups, opts.resample)
    prepared = prepare_recordings(recordings, opts, group_of)
    like = options_from_meta(prepared.meta, opts.resample, None)
    sides = [prepare_recordings(recordings, like, {path: "new" for path in recordings})
             for recordings, _ in (recordings_of(group, None, like.resample) for group in test)]
    X_test, y_test = np.concatenate([p.X for p in sides]), np.concatenate([p.y for p in sides])
    if len(y_test) != len(fold.y_test):
        raise SystemExit(f"the recipe cuts {len(y_test)} test trials, the peers {len(fold.y_test)}")
    return prepared.X, prepared.y, X_test, y_test


def readout_accuracy(fold: Fold, recipe: dict) -> float:
    """A linear readout of the very windows EEGModel is given (recipe_windows): logistic regression on the
    standardized, flattened windows (N, C * F * T), its regularization chosen on 5 contiguous inner folds of the
    training windows. What EEGModel scores above or below it is what the network adds to, or loses from, its
    features."""
    X_train, y_train, X_test, y_test = recipe_windows(fold, recipe)
    readout = linear_readout(X_train.reshape(len(X_train), -1), y_train)
    return float(np.mean(readout.predict(X_test.reshape(len(X_test), -1)) == y_test))


def linear_readout(X: np.ndarray, y: np.ndarray) -> Pipeline:
    """Logistic regression fitted on standardized features X (N, D), its C chosen by accuracy on 5 contiguous inner
    folds (in file order; eeg2arm.readout.inner_folds): eeg2arm.readout's, after a scaler of every column."""
    return quiet_fit(make_pipeline(StandardScaler(), logistic_cv(y)), X, y)


def opened(files: list[Path]) -> dict[tuple[Path, str], mne.io.BaseRaw | mne.BaseEpochs]:
    """{(file, its subject): the file opened as `prepare` opens it}, in `prepare`'s (sorted) order."""
    recordings = {path: open_recording(path, None) for path in sorted(files, key=str)}
    return {(path, subject_of(path, inst)): inst for path, inst in recordings.items()}


def fold_peer_accuracy(method: str, fold: Fold, sfreq: float, name: str, unfiltered: bool = False) -> float:
    return peer_accuracy(method, name, sfreq, fold.X_train, fold.y_train, fold.X_test, fold.y_test, fold.g_train,
                         fold.g_test, unfiltered)


def sfreq_of(fold: Fold) -> float:
    path = fold.train_files[0]
    if path.name.endswith("-epo.fif"):
        return mne.read_epochs(path, preload=False, verbose="error").info["sfreq"]
    return mne.io.read_raw(path, preload=False, verbose="error").info["sfreq"]


def row_methods(name: str, methods: tuple[str, ...], deep: bool, deep_everywhere: bool,
                groups: bool) -> tuple[str, ...]:
    """The methods measured on a row: those that apply (peers.applies); the deep peers only when asked for, on the
    motor-rhythm rows or everywhere (on 2 cores their training takes longer than every other method together)."""
    return tuple(m for m in methods if (m in OWN or applies(m, name, groups))
                 and (m not in DEEP or deep_everywhere or (deep and name in MOTOR_RHYTHM)))


def run_set(name: str, recipe: dict, methods: tuple[str, ...], subjects: tuple[str, ...],
            log: Callable[[str], None], unfiltered: bool = False) -> tuple[str, dict[str, list[float]], int, float]:
    """(fold description, {method: scores}, trials, seconds); within-subject scores are per-subject means."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        splits, how = folds(name, recipe, tmp, subjects)
        per_fold: dict[str, list[tuple[str, float]]] = {m: [] for m in methods}
        spent = dict.fromkeys(methods, 0.0)  # s per method, fitting and scoring
        n_trials = 0
        for k, fold in enumerate(splits):
            sfreq = sfreq_of(fold)
            n_trials = max(n_trials, len(fold.y_train) + len(fold.y_test))
            for method in methods:
                started = time.perf_counter()
                acc = (eegmodel_accuracy(fold, recipe) if method == "eegmodel"
                       else readout_accuracy(fold, recipe) if method == "readout"
                       else fold_peer_accuracy(method, fold, sfreq, name, unfiltered))
                spent[method] += time.perf_counter() - started
                per_fold[method].append((fold.subject, acc))
            log(f"{name} fold {k + 1} {fold.subject}: " + ", ".join(f"{m} {per_fold[m][-1][1]:.3f}" for m in methods)
                + f" ({time.perf_counter() - t0:.0f} s)")
        log(f"{name} seconds per method: " + ", ".join(f"{m} {t:.0f}" for m, t in spent.items()))
    scores = {}
    for method, rows in per_fold.items():
        if within(name):  # the mean of each subject's held-out runs, then over subjects
            subjects_seen = dict.fromkeys(s for s, _ in rows)
            scores[method] = [float(np.mean([a for s, a in rows if s == subj])) for subj in subjects_seen]
        else:
            scores[method] = [a for _, a in rows]
    if name.startswith("eegmmidb_cross"):
        n_trials = sum(len(edf_trials(run_file(s, r), event_classes(recipe["prepare"]), *span(recipe["prepare"]))[1])
                       for s in subjects for r in RUNS)
    return how, scores, n_trials, time.perf_counter() - t0


def new_subject_set(recipe: dict, base: dict, methods: tuple[str, ...], subjects: tuple[str, ...],
                    log: Callable[[str], None], unfiltered: bool = False
                    ) -> tuple[str, dict[str, list[float]], int, float]:
    """Each fold's cross-subject model (the `base` row's recipe) on each subject it never saw: `prepare --like` its
    imagery runs (aligned from its own signal), `eeg2arm calibrate` on its first `calibration` trials with the row's
    `calibrate` arguments, `evaluate` on the rest. The peers train on the fold's subjects and those calibration
    trials, pooled."""
    t0, n_cal, executed = time.perf_counter(), recipe["calibration"], base.get("executed", False)
    data = EegmmidbTrials(base["prepare"], subjects, executed)
    scores: dict[str, list[float]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for tr, te in KFold(4).split(subjects):
            train_keys = [(subjects[i], r) for i in tr for r in RUNS + (EXECUTED if executed else ())]
            if "eegmodel" in methods:
                shutil.rmtree(tmp / "cross", ignore_errors=True)
                eeg2arm("prepare", *[data.runs[k] for k in train_keys], "--out", tmp / "cross", *base["prepare"])
                groups = ["--groups", tmp / "cross" / "groups.npy"] if split_by_group(base) else ["--no-groups"]
                eeg2arm("train", "--x", tmp / "cross" / "X.npy", "--y", tmp / "cross" / "y.npy", "--save",
                        tmp / "cross.pt", *groups, *base["train"])
            for i in te:
                fold = data.fold(train_keys, [(subjects[i], r) for r in RUNS], subjects[i])
                for method in methods:
                    scores[method].append(new_subject_eegmodel(fold, recipe, n_cal, tmp) if method == "eegmodel"
                                          else peer_accuracy(method, "eegmmidb_new_subject_mu", sfreq_of(fold),
                                                             *calibrated(fold, n_cal), unfiltered))
                log(f"eegmmidb_new_subject_mu {fold.subject}: " + ", ".join(f"{m} {scores[m][-1]:.3f}"
                                                                            for m in methods)
                    + f" ({time.perf_counter() - t0:.0f} s)")
    n_trials = sum(len(data.trials[(s, r)][1]) for s in subjects for r in RUNS)
    return (f"{len(subjects) // 4} subjects left out, 4 folds; {n_cal} calibration trials", scores, n_trials,
            time.perf_counter() - t0)


def split_by_group(recipe: dict) -> bool:
    """Whether `train` splits the row's validation by group: a grouped row whose recipe validates (not --val-split 0,
    which `train --groups` refuses)."""
    return recipe["groups"] and validates(recipe["train"])


def calibrated(fold: Fold, n_cal: int) -> tuple:
    """The peers' sides of a new subject: the fold's training trials and its first n_cal trials | the rest."""
    return (np.concatenate([fold.X_train, fold.X_test[:n_cal]]), np.concatenate([fold.y_train, fold.y_test[:n_cal]]),
            fold.X_test[n_cal:], fold.y_test[n_cal:], np.concatenate([fold.g_train, fold.g_test[:n_cal]]),
            fold.g_test[n_cal:])


def new_subject_eegmodel(fold: Fold, recipe: dict, n_cal: int, tmp: Path) -> float:
    """`prepare --like` the new subject's runs, `calibrate` the cross model on the first n_cal trials, evaluate the
    rest."""
    for sub in ("new", "cal", "rest"):
        shutil.rmtree(tmp / sub, ignore_errors=True)
    eeg2arm("prepare", *fold.test_files, "--out", tmp / "new", "--like", tmp / "cross" / "meta.json")
    X, y = np.load(tmp / "new" / "X.npy"), np.load(tmp / "new" / "y.npy")
    if not np.array_equal(y, fold.y_test):
        raise SystemExit(f"prepare's labels of {fold.subject} differ from the peers' trials")
    for sub, part in {"cal": slice(None, n_cal), "rest": slice(n_cal, None)}.items():
        (tmp / sub).mkdir()
        np.save(tmp / sub / "X.npy", X[part])
        np.save(tmp / sub / "y.npy", y[part])
        shutil.copy(tmp / "new" / "meta.json", tmp / sub / "meta.json")
    eeg2arm("calibrate", "--ckpt", tmp / "cross.pt", "--x", tmp / "cal" / "X.npy", "--y", tmp / "cal" / "y.npy",
            "--save", tmp / "new.pt", *recipe["calibrate"])
    return evaluated(tmp / "new.pt", tmp / "rest")


def evaluated(ckpt: Path, data: Path) -> float:
    """The accuracy `eeg2arm evaluate` prints for a checkpoint on a prepared folder (its X.npy and y.npy)."""
    report = eeg2arm("evaluate", "--ckpt", ckpt, "--x", data / "X.npy", "--y", data / "y.npy", "--device", "cpu")
    return float(re.search(r"\baccuracy=([0-9.]+)", report).group(1))


EXAMPLES = {  # (training inputs, test inputs) of the printed commands, relative to ../shared/data/raw
    "eyes_open_closed": (["eyes_open_closed/sub-01_ses-01_task-EO_run-01_eeg_0-200s_raw.fif",
                          "eyes_open_closed/sub-01_ses-01_task-EC_run-01_eeg_0-200s_raw.fif"], ["NEW_raw.fif"]),
    "SelfRegulationSCP1": (["SelfRegulationSCP1/SelfRegulationSCP1_TRAIN-epo.fif"], ["NEW-epo.fif"]),
    "FingerMovements": (["FingerMovements/FingerMovements_TRAIN-epo.fif"], ["NEW-epo.fif"]),
    "KDD_Example": (["KDD_Example/KDD_Example_TRAIN-epo.fif"], ["NEW-epo.fif"]),
    "eegmmidb_within": (["eegmmidb/S001/S001R04.edf", "eegmmidb/S001/S001R08.edf"], ["eegmmidb/S001/S001R12.edf"]),
    "eegmmidb_cross": ([f"eegmmidb/{s}/{s}{r}.edf" for s in SUBJECTS[:9] for r in RUNS],
                       [f"eegmmidb/{s}/{s}{r}.edf" for s in SUBJECTS[9:] for r in RUNS]),
}
EXAMPLES["eegmmidb_within_mu"], EXAMPLES["eegmmidb_cross_mu"] = EXAMPLES["eegmmidb_within"], EXAMPLES["eegmmidb_cross"]


def commands(name: str, recipe: dict, recipes: dict) -> list[str]:
    """The shell commands that make and score EEGModel with a recipe (what the benchmark runs per fold)."""
    raw = "../shared/data/raw/"
    if name == "eegmmidb_new_subject_mu":
        base, n = recipe["cross"], recipe["calibration"]
        return [f"# the model of {base} (its commands), then for a subject it never saw, e.g. S010:",
                f"eeg2arm prepare {raw}eegmmidb/S010/S010R{{04,08,12}}.edf --out S010 --like {base}/meta.json",
                f"eeg2arm calibrate --ckpt {base}.pt --x S010/X.npy --y S010/y.npy --trials {n} --save S010.pt "
                f"{' '.join(recipe['calibrate'])}".rstrip(),
                f"# rest/ = S010's trials after the first {n} (X.npy, y.npy and its meta.json)",
                "eeg2arm evaluate --ckpt S010.pt --x rest/X.npy --y rest/y.npy"]
    train_files, test_files = EXAMPLES[name]
    executed = recipe.get("executed", False)
    if name.startswith("eegmmidb_cross"):  # brace expansion keeps the 27 files readable
        train_in, test_in = raw + "eegmmidb/S00{1..9}/*R{04,08,12}.edf", raw + "eegmmidb/S01{0..2}/*R{04,08,12}.edf"
        train_in += f" {raw}eegmmidb_executed/S00{{1..9}}/*R{{03,07,11}}.edf" if executed else ""
    else:
        train_in = " ".join(raw + f for f in train_files)
        train_in += f" {raw}eegmmidb_executed/S001/S001R{{03,07,11}}.edf" if executed else ""
        test_in = " ".join(f if f.startswith("NEW") else raw + f for f in test_files)
    groups = f" --groups {name}/groups.npy" if split_by_group(recipe) else " --no-groups"
    return [f"eeg2arm prepare {train_in} --out {name} {' '.join(recipe['prepare'])}",
            f"eeg2arm train --x {name}/X.npy --y {name}/y.npy --save {name}.pt{groups} {' '.join(recipe['train'])}",
            f"eeg2arm prepare {test_in} --out {name}_test --like {name}/meta.json",
            f"eeg2arm evaluate --ckpt {name}.pt --x {name}_test/X.npy --y {name}_test/y.npy"]


def cell(scores: list[float] | None) -> str:
    return "–" if not scores else f"{np.mean(scores):.3f} ± {np.std(scores):.3f}"


def machine() -> str:
    """The machine (benchmarks/machine.py) with torch's threads and the versions of the modules as imported,
    printed under the table."""
    import torch  # here: loaded by then in a run that trains, and `--commands` need not load it
    modules = {"torch": torch, "numpy": np, "scipy": scipy, "mne": mne, "scikit-learn": sklearn}
    return machine_line({name: module.__version__ for name, module in modules.items()},
                        f"{torch.get_num_threads()} torch threads")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    p.add_argument("--deep", action="store_true", help="EEGNet and ShallowFBCSPNet on the motor-rhythm rows too")
    p.add_argument("--all", action="store_true", help="EEGNet and ShallowFBCSPNet on every row")
    p.add_argument("--unfiltered-peers", action="store_true",
                   help="motor-rhythm rows: the peers on the raw trials (the eyes' slow potentials in them)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--deep-epochs", type=int, default=peers.DEEP_EPOCHS,
                   help="epochs of EEGNet and ShallowFBCSPNet (the default is a budget for 2 cores)")
    p.add_argument("--subjects", type=int, default=len(SUBJECTS), choices=range(4, 13),
                   help="eegmmidb: the first N subjects (4 to 12)")
    p.add_argument("--recipes", type=Path, default=HERE / "recipes.toml")
    p.add_argument("--commands", action="store_true", help="print each recipe's shell commands and exit")
    args = p.parse_args()
    peers.DEEP_EPOCHS = args.deep_epochs
    mne.set_log_level("ERROR")
    recipes = tomllib.loads(args.recipes.read_text())
    if args.commands:
        for name in args.sets:
            print(f"# {name}\n" + "\n".join(commands(name, recipes[name], recipes)) + "\n")
        return
    methods = tuple(m for m in METHODS if m in args.methods)
    subjects = SUBJECTS[:args.subjects]
    rows, t_all = [], time.perf_counter()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    for name in args.sets:
        if name == "eegmmidb_new_subject_mu":
            measured = tuple(m for m in methods if m == "eegmodel" or m in NEW_SUBJECT_PEERS)
            base = recipes[recipes[name]["cross"]]
            how, scores, n, seconds = new_subject_set(recipes[name], base, measured, subjects, log,
                                                      args.unfiltered_peers)
        else:
            measured = row_methods(name, methods, args.deep, args.all, name.startswith("eegmmidb_cross"))
            how, scores, n, seconds = run_set(name, recipes[name], measured, subjects, log, args.unfiltered_peers)
        rows.append(f"| {name} | {n} | {how} | {' | '.join(cell(scores.get(m)) for m in methods)} | {seconds:.0f} s |")
        log(rows[-1])
    print(f"| set | trials | folds | {' | '.join(HEADERS[m] for m in methods)} | time |")
    print("|---|---|---|" + "---|" * len(methods) + "---|")
    print("\n".join(rows))
    print(f"total {time.perf_counter() - t_all:.0f} s on {machine()}")


if __name__ == "__main__":
    main()
