"""FingerMovements: why a model that cross-validates at 0.59 calls later trials one class, and what fixes it.

The recipe reads the absolute level of the slow potentials (the mean of the < 4 Hz signal per 50 ms frame, common
average reference). Two measurements on the shared TRAIN file (316 trials in recording order):

1. drift: per channel, the left/right difference of the mean level against its linear drift over the session;
2. later trials: trained on the first part of the session (the recipe's commands), tested on the rest, with the
   epoch picked on a random fifth of the training trials, the same with `prepare --align mean` (each recording's
   channel means taken out, estimated from its own signal), and with `train --val-last` (the epoch picked on the
   latest training trials: the recipe since this measurement), over three cuts and three seeds: accuracy and the
   share of trials called "right".

The criterion its train settings were chosen by (inside each benchmark fold's training blocks) is
benchmarks/criterion.py FingerMovements.

    .venv/bin/python benchmarks/drift.py             # ~15 min on 2 cores (under load; a few minutes idle)
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # per-epoch bars would drown the table; tqdm reads it on import

import mne
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import RAW, eeg2arm, tomllib  # noqa: E402

HERE = Path(__file__).resolve().parent
CUTS = (0.6, 0.7, 0.8)
SEEDS = (1337, 1, 2)


def drift_table(X: np.ndarray, y: np.ndarray, channels: list[str]) -> list[str]:
    """The channels with the largest class difference: difference, sd, and drift over the session, in µV."""
    level = X[:, :, 0, :].mean(axis=-1)  # (N, C): each trial's mean slow level
    t = np.arange(len(y))
    drift = np.array([np.polyfit(t, level[:, c], 1)[0] * len(y) for c in range(level.shape[1])])
    diff = level[y == 1].mean(axis=0) - level[y == 0].mean(axis=0)
    lines = ["| channel | right - left | sd over trials | drift over the 316 trials |", "|---|---|---|---|"]
    for c in np.argsort(-np.abs(diff / level.std(axis=0)))[:6]:
        lines.append(f"| {channels[c]} | {diff[c]:+.2f} | {level[:, c].std():.2f} | {drift[c]:+.2f} |")
    return lines


# (prepare's extra arguments, train's) on the recipe less --val-last, i.e. validated on a random fifth
VARIANTS = {"a random fifth validates": ([], []), "+ --align mean": (["--align", "mean"], []),
            "--val-last (the recipe)": ([], ["--val-last"])}


def later_trials(tmp: Path, recipe: dict, epochs: mne.BaseEpochs, cut: float, seed: int, variant: str) -> tuple:
    """(accuracy, share called right) on the trials after `cut` of a model of the trials before it."""
    n = round(cut * len(epochs))
    for part, idx in (("early", slice(0, n)), ("late", slice(n, None))):
        epochs[idx].save(tmp / f"{part}-epo.fif", overwrite=True, verbose="error")
    for sub in ("train", "test"):
        if (tmp / sub).exists():
            for f in (tmp / sub).iterdir():
                f.unlink()
            (tmp / sub).rmdir()
    prepare_extra, train_extra = VARIANTS[variant]
    eeg2arm("prepare", tmp / "early-epo.fif", "--out", tmp / "train", *recipe["prepare"], *prepare_extra)
    eeg2arm("train", "--x", tmp / "train" / "X.npy", "--y", tmp / "train" / "y.npy", "--save", tmp / "m.pt",
            "--no-groups", "--seed", str(seed), *[a for a in recipe["train"] if a != "--val-last"], *train_extra)
    eeg2arm("prepare", tmp / "late-epo.fif", "--out", tmp / "test", "--like", tmp / "train" / "meta.json")
    out = eeg2arm("infer", "--ckpt", tmp / "m.pt", "--x", tmp / "test" / "X.npy", "--device", "cpu")
    pred = np.array([int(m) for m in re.findall(r"pred=(\d+)", out)])
    y = np.load(tmp / "test" / "y.npy")
    return float((pred == y).mean()), float(pred.mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = p.parse_args()
    mne.set_log_level("ERROR")
    recipe = tomllib.loads((HERE / "recipes.toml").read_text())["FingerMovements"]
    t0 = time.perf_counter()
    epochs = mne.read_epochs(RAW / "FingerMovements" / "FingerMovements_TRAIN-epo.fif", preload=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        eeg2arm("prepare", RAW / "FingerMovements" / "FingerMovements_TRAIN-epo.fif", "--out", tmp / "all",
                *recipe["prepare"])
        print("\n".join(drift_table(np.load(tmp / "all" / "X.npy"), np.load(tmp / "all" / "y.npy"),
                                    epochs.ch_names)))
        print("\n| recipe | cut (train on the first) | accuracy on the later trials | share called right |")
        print("|---|---|---|---|")
        for variant in args.variants:
            for cut in CUTS:
                scores = np.array([later_trials(tmp, recipe, epochs, cut, seed, variant) for seed in SEEDS])
                print(f"| {variant} | {cut:.0%} | "
                      f"{scores[:, 0].mean():.3f} ± {scores[:, 0].std():.3f} | {scores[:, 1].mean():.2f} |",
                      flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
