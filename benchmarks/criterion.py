"""The inner criterion a recipe's training settings are chosen by: splits inside the training side of each of
benchmarks/accuracy.py's folds, so that no test fold is read.

    FingerMovements (5 blocks in order)   inside each fold's 4 training blocks, one left out: 20 splits
    SelfRegulationSCP1, KDD_Example       inside each fold's training trials, stratified 4-fold: 20 splits
    eegmmidb_within(_mu)                  per subject and test run, one of the 2 training imagery runs left out: 72
    eegmmidb_cross(_mu)                   inside each fold's 9 training subjects, 3 left out at a time: 12 splits

On every split it trains the row's recipe as benchmarks/recipes.toml holds it, the recipe with each variant's train
arguments added (the last given wins; a variant's arguments after a `prepare:` token are added to the recipe's
prepare arguments: features only, e.g. --variant="prepare: --bands mubeta:8-30", since the splits' trials
are the recipe's), and scores accuracy.py's linear readout of the same windows. With `--seeds`,
each of them trains once per seed (`train --seed`, given last) and a split's score is the mean over the seeds: one
seed favours the settings that were chosen with it (on eegmmidb_within_mu's splits the recipe scored 0.693 with its
seed 1337 and 0.635-0.657 with four others, docs/accuracy.md). A setting with `--ensemble N` trains members S..S+N-1
per seed S, so seeds closer than N share members: space them N apart for independent ensembles. It prints one
table: the mean over the splits, and each variant's paired difference to the recipe (mean ± standard error, splits
won and lost). The rule the recipes
follow (docs/accuracy.md): variants are fixed before the run, and the one with the best inner mean replaces the
recipe if it beats the recipe's by more than its standard error (a tie keeps what is there; until stop 23,
beating the mean was enough; since stop 25, three seeds).

    .venv/bin/python benchmarks/criterion.py eegmmidb_within_mu --variant=--no-linear-stem    # ~10 min on 2 cores
    .venv/bin/python benchmarks/criterion.py FingerMovements --variant="--layers 2" --seeds 1337,1,2
    .venv/bin/python benchmarks/criterion.py eegmmidb_cross_mu --variant="prepare: --bands mubeta:8-30"
    .venv/bin/python benchmarks/criterion.py eegmmidb_cross_mu --readout-only --variant="prepare: --spatial csp:8"

`--readout-only` trains no EEGModel: each setting (the recipe, and variants of its prepare arguments only) is scored
by the linear readout of its own windows, a screen of features in one to three minutes on 2 cores (stop 29: it does not predict
EEGModel's score, docs/accuracy.md; a feature that the readout likes still goes to the criterion).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mne
import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import HERE, IN_ORDER, RUNS, SUBJECTS, EegmmidbTrials, Fold, folds, tomllib  # noqa: E402
from accuracy import eegmodel_accuracy, readout_accuracy  # noqa: E402
from eeg2arm.train import TrainOptions  # noqa: E402

ROWS = ("FingerMovements", "SelfRegulationSCP1", "KDD_Example", "eegmmidb_within", "eegmmidb_cross",
        "eegmmidb_within_mu", "eegmmidb_cross_mu")
READOUT = "its features + LR"
DEFAULT_SEED = TrainOptions.seed  # train's default (1337): the seed every recipe was measured with


def epochs_inner(name: str, outer: Fold, tmp: Path, k: int) -> Iterator[Fold]:
    """Splits of an outer fold's training epochs (one -epo.fif): contiguous blocks for the sets tested in recording
    order, else stratified, each side written as its own file for prepare."""
    epochs = mne.read_epochs(outer.train_files[0], preload=True, verbose="error")
    splitter = KFold(4) if name in IN_ORDER else StratifiedKFold(4, shuffle=True, random_state=0)
    for j, (fit, held) in enumerate(splitter.split(outer.X_train, outer.y_train)):
        files = [tmp / f"inner{k}.{j}-{side}-epo.fif" for side in ("fit", "held")]
        for path, idx in zip(files, (fit, held)):
            epochs[idx].save(path, overwrite=True, verbose="error")
        yield Fold([files[0]], [files[1]], outer.X_train[fit], outer.y_train[fit], outer.X_train[held],
                   outer.y_train[held], outer.subject)


def eegmmidb_inner(name: str, outer: Fold, data: EegmmidbTrials) -> Iterator[Fold]:
    """Splits of an outer fold's training runs: within a subject, each imagery run left out in turn (the executed
    runs stay in training); across subjects, a third of the training subjects left out in turn."""
    key_of = {path: key for key, path in data.runs.items()}
    keys = [key_of[path] for path in outer.train_files]  # (subject, run)
    if name.startswith("eegmmidb_within"):
        for held in [key for key in keys if key[1] in RUNS]:
            yield data.fold([key for key in keys if key != held], [held], outer.subject)
        return
    subjects = sorted({s for s, _ in keys})
    for fit, held in KFold(3).split(subjects):
        fit_subjects, held_subjects = {subjects[i] for i in fit}, {subjects[i] for i in held}
        yield data.fold([key for key in keys if key[0] in fit_subjects],
                        [key for key in keys if key[0] in held_subjects and key[1] in RUNS])


def inner_folds(name: str, recipe: dict, tmp: Path, subjects: tuple[str, ...]) -> Iterator[Fold]:
    """Every inner split of every outer fold of the row, in the benchmark's fold order."""
    outer_folds, _ = folds(name, recipe, tmp, subjects)
    data = (EegmmidbTrials(recipe["prepare"], subjects, recipe.get("executed", False))
            if name.startswith("eegmmidb") else None)
    for k, outer in enumerate(outer_folds):
        yield from (eegmmidb_inner(name, outer, data) if data is not None else epochs_inner(name, outer, tmp, k))


PREPARE = "prepare:"  # in a variant, the arguments after it are prepare's
TRIAL_FLAGS = ("--event", "--tmin", "--tmax", "--window", "--recipe", "--like", "--out", "--group-by", "--resample")


def variant_arguments(variant: str) -> tuple[list[str], list[str]]:
    """(train arguments, prepare arguments) of a variant: the prepare ones are those after `prepare:`."""
    words = shlex.split(variant)
    cut = words.index(PREPARE) if PREPARE in words else len(words)
    return words[:cut], words[cut + 1:]


def seeded(recipe: dict, variant: str, seed: int) -> dict:
    """The recipe with a variant's train arguments and `--seed seed` added, in that order (the last given wins), and
    the variant's prepare arguments (after `prepare:`) added to the recipe's."""
    train, prepare = variant_arguments(variant)
    return {**recipe, "prepare": [*recipe["prepare"], *prepare],
            "train": [*recipe["train"], *train, "--seed", str(seed)]}


def criterion(name: str, recipe: dict, variants: list[str], subjects: tuple[str, ...],
              seeds: tuple[int, ...] = (DEFAULT_SEED,), readout_only: bool = False) -> dict[str, list[float]]:
    """{"the recipe" | variant | READOUT: accuracy per inner split, the mean over `seeds` for EEGModel}; with
    `readout_only`, {"the recipe" | variant: the linear readout of its windows}, no EEGModel trained (no seeds)."""
    settings = {"the recipe": ""} | {v: v for v in variants}  # name: train arguments over the recipe's
    scores: dict[str, list[float]] = {key: [] for key in [*settings, *([] if readout_only else [READOUT])]}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, fold in enumerate(inner_folds(name, recipe, Path(tmp), subjects)):
            for key, variant in settings.items():
                scores[key].append(readout_accuracy(fold, seeded(recipe, variant, DEFAULT_SEED)) if readout_only
                                   else float(np.mean([eegmodel_accuracy(fold, seeded(recipe, variant, seed))
                                                       for seed in seeds])))
            if not readout_only:
                scores[READOUT].append(readout_accuracy(fold, recipe))
            print(f"split {i + 1}: " + ", ".join(f"{key} {a[-1]:.3f}" for key, a in scores.items())
                  + f" ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return scores


def table(scores: dict[str, list[float]]) -> list[str]:
    """The printed table. The paired difference has four decimals: the rule compares it with its standard error,
    and at three the two can print alike (stop 28). A split counts as won or lost only beyond float rounding: the
    same trial counts spread differently over the seeds (60, 60, 76 of 135 against 60, 76, 60) average to means that
    differ in their last bits."""
    base = np.array(scores["the recipe"])
    lines = [(f"| train arguments (over the recipe's) | inner accuracy, {len(base)} splits (± sd) | paired difference "
              "to the recipe (± s.e.) | splits won / lost |"), "|---|---|---|---|"]
    for key, values in scores.items():
        a = np.array(values)
        diff = np.where(np.isclose(a, base, rtol=0, atol=1e-9), 0.0, a - base)
        paired = "–" if key == "the recipe" else (f"{diff.mean():+.4f} ± {diff.std(ddof=1) / np.sqrt(len(a)):.4f}"
                                                 if len(a) > 1 else f"{diff.mean():+.4f}")
        won = "–" if key == "the recipe" else f"{int((diff > 0).sum())} / {int((diff < 0).sum())}"
        lines.append(f"| {key} | {a.mean():.3f} ± {a.std():.3f} | {paired} | {won} |")
    return lines


def seed_list(text: str) -> tuple[int, ...]:
    """"1337,1,2" -> (1337, 1, 2): distinct integers."""
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected integers separated by commas, e.g. 1337,1,2") from None
    if len(set(seeds)) < len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError("each seed must be given once, and be >= 0")
    return seeds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("row", choices=ROWS)
    p.add_argument("--variant", action="append", default=[], metavar="ARGS",
                   help="train arguments added to the recipe's, e.g. --variant=--linear-stem, then optionally "
                        f"'{PREPARE} ' and prepare arguments added to the recipe's (repeatable)")
    p.add_argument("--subjects", type=int, default=len(SUBJECTS), choices=range(4, 13),
                   help="EEGMMIDB rows: the first N subjects (a quicker, noisier criterion)")
    p.add_argument("--seeds", type=seed_list, default=(DEFAULT_SEED,), metavar="S,S,...",
                   help=f"train each setting once per seed, a split's score the mean (default: {DEFAULT_SEED})")
    p.add_argument("--readout-only", action="store_true",
                   help="score each setting's features by accuracy.py's linear readout of its windows, no EEGModel "
                        "trained (a screen of prepare variants: one to three minutes on 2 cores)")
    p.add_argument("--recipes", type=Path, default=HERE / "recipes.toml")
    args = p.parse_args()
    if args.readout_only and (args.seeds != (DEFAULT_SEED,) or any(variant_arguments(v)[0] for v in args.variant)):
        p.error("--readout-only trains nothing: give its variants as 'prepare: ...' only, and no --seeds")
    if len(set(args.variant)) < len(args.variant) or not all(v.strip() for v in args.variant):
        p.error("each --variant must be given once and name train arguments")
    for variant in args.variant:
        words, (_, prepare) = shlex.split(variant), variant_arguments(variant)
        if words.count(PREPARE) > 1 or (PREPARE in words and not prepare):
            p.error(f"give a variant's prepare arguments after one '{PREPARE}'")
        if any(w.split("=")[0] in TRIAL_FLAGS for w in prepare):
            p.error(f"a variant's prepare arguments may change the features, not the trials or the splits "
                    f"({', '.join(TRIAL_FLAGS)}): the splits are cut with the recipe's")
    if any(a == "--seed" or a.startswith("--seed=") for v in args.variant for a in shlex.split(v)):
        p.error("give seeds with --seeds, not in a --variant")
    mne.set_log_level("ERROR")
    recipe = tomllib.loads(args.recipes.read_text())[args.row]
    t0 = time.perf_counter()
    print("\n".join(table(criterion(args.row, recipe, args.variant, SUBJECTS[:args.subjects], args.seeds,
                                    args.readout_only))))
    print("each setting's score: the linear readout of its windows (no EEGModel trained)" if args.readout_only else
          f"seeds: {', '.join(map(str, args.seeds))} (EEGModel's score on a split: the mean over them)")
    print(f"{args.row}: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
