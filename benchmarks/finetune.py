"""Starting a new subject from a cross-subject checkpoint: what a calibration run of 15 trials gains on EEGMMIDB.

For each of 4 folds, a cross-subject model is trained on 9 subjects (the eegmmidb_cross recipe of
benchmarks/recipes.toml, its network trained as until stop 31, NETWORK below: fine-tuning needs a trained network,
and since stop 31 the recipe fits its readout alone); each of the 3 subjects it never saw then gives its first imagery
run (R04, 15 trials) as calibration and is tested on its other two runs (R08, R12, 30 trials). Each method is the
commands a user runs:
  * zero-shot:        `eeg2arm evaluate` of the cross-subject checkpoint;
  * fine-tune:        `eeg2arm train --init CROSS.pt` on the calibration run (the recipe's `finetune` arguments);
  * + restandardize:  the same with `--restandardize` (input standardization refitted to the new subject's signal);
  * head only:        the same, with `--freeze stem,mix,embed,blocks` (only the last LayerNorm and the head learn);
  * own model:        `eeg2arm train` on the calibration run alone (the eegmmidb_within recipe: since stop 31 its
                      readout fitted as a regression), no checkpoint.
Prints one table: accuracy on the test runs, mean ± sd over the 12 subjects.

    .venv/bin/python benchmarks/finetune.py        # ~1 min on 2 cores (32 s at stop 31)
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import KFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import RAW, SUBJECTS, eeg2arm, evaluated, tomllib  # noqa: E402

HERE = Path(__file__).resolve().parent
NETWORK = ["--classes", "2", "--elec", "64", "--bands", "1", "--frame-embed", "32", "--drop", "0.3",
           "--kernel-time", "7", "--epochs", "30", "--lr", "3e-3", "--batch", "32", "--schedule", "cosine",
           "--channel-drop", "0.2", "--label-smoothing", "0.1", "--select", "accuracy", "--readout", "16",
           "--workers", "0", "--device", "cpu"]  # eegmmidb_cross's train arguments until stop 31 (with --groups)
METHODS = ("zero-shot", "fine-tune", "fine-tune + restandardize", "head only + restandardize",
           "own model (15 trials)")


def trained(tmp: Path, name: str, data: Path, args: list[str]) -> Path:
    eeg2arm("train", "--x", data / "X.npy", "--y", data / "y.npy", "--save", tmp / name, *args)
    return tmp / name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", type=Path, default=HERE / "recipes.toml")
    args = p.parse_args()
    recipes = tomllib.loads(args.recipes.read_text())
    cross, within = recipes["eegmmidb_cross"], recipes["eegmmidb_within"]
    scores: dict[str, list[float]] = {m: [] for m in METHODS}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for train_idx, test_idx in KFold(4).split(SUBJECTS):
            files = [RAW / "eegmmidb" / SUBJECTS[i] / f"{SUBJECTS[i]}{r}.edf" for i in train_idx
                     for r in ("R04", "R08", "R12")]
            shutil.rmtree(tmp / "cross", ignore_errors=True)
            eeg2arm("prepare", *files, "--out", tmp / "cross", *cross["prepare"])
            ckpt = trained(tmp, "cross.pt", tmp / "cross", [*NETWORK, "--groups", tmp / "cross" / "groups.npy"])
            for i in test_idx:
                s = SUBJECTS[i]
                for part, runs in (("calibration", ("R04",)), ("test", ("R08", "R12"))):
                    shutil.rmtree(tmp / part, ignore_errors=True)
                    eeg2arm("prepare", *[RAW / "eegmmidb" / s / f"{s}{r}.edf" for r in runs], "--out", tmp / part,
                            "--like", tmp / "cross" / "meta.json")
                cal, test = tmp / "calibration", tmp / "test"
                got = {
                    "zero-shot": evaluated(ckpt, test),
                    "fine-tune": evaluated(trained(tmp, "ft.pt", cal, [*cross["finetune"], "--init", ckpt]), test),
                    "fine-tune + restandardize": evaluated(trained(
                        tmp, "ftr.pt", cal, [*cross["finetune"], "--init", ckpt, "--restandardize"]), test),
                    "head only + restandardize": evaluated(trained(
                        tmp, "fth.pt", cal, [*cross["finetune"], "--init", ckpt, "--restandardize",
                                             "--freeze", "stem,mix,embed,blocks"]), test),
                    "own model (15 trials)": evaluated(trained(tmp, "own.pt", cal, within["train"]), test),
                }
                for method, acc in got.items():
                    scores[method].append(acc)
                print(f"{s}: " + ", ".join(f"{m} {a:.3f}" for m, a in got.items())
                      + f" ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    print("| new subject, 15 calibration trials | accuracy on its other 30 trials (mean ± sd, 12 subjects) |")
    print("|---|---|")
    for method in METHODS:
        print(f"| {method} | {np.mean(scores[method]):.3f} ± {np.std(scores[method]):.3f} |")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
