"""Cross-validated accuracy of EEGModel vs a log-band-power logistic-regression baseline vs chance.

For every labelled set in ../shared/data/bandpower/ (the README's recipe), the same folds score:
  * model:    `eeg2arm.train.train` on the training folds (its own validation split picks the best epoch; grouped
              where the set has groups), then the saved checkpoint predicts the test fold;
  * baseline: StandardScaler + LogisticRegression(C=0.1) on the flattened (C*F*T) features (the README's baseline);
  * chance:   the training folds' majority class (DummyClassifier).
Folds: eyes_open_closed grouped by 40 s blocks (StratifiedGroupKFold, 5 folds), eegmmidb_imagery leave one run
out (3 folds), the epoched sets stratified 5-fold. Prints one Markdown table, mean ± sd over folds.

    .venv/bin/python benchmarks/accuracy.py                 # the defaults below (~1 min on 2 cores)
    .venv/bin/python benchmarks/accuracy.py --epochs 5 --drop 0.1 --frame-embed 256 --sets eyes_open_closed
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # train()'s per-epoch bar, once per fold, would drown the table

import numpy as np  # noqa: E402
from sklearn.dummy import DummyClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from eeg2arm.checkpoint import load_model_from_checkpoint  # noqa: E402
from eeg2arm.config import EEGConfig  # noqa: E402
from eeg2arm.infer import predict_logits  # noqa: E402
from eeg2arm.train import TrainOptions, train  # noqa: E402

SHARED = Path(os.environ.get("EEG2ARM_SHARED", Path(__file__).resolve().parents[2] / "shared"))
BANDPOWER = SHARED / "data" / "bandpower"
SETS = ("eyes_open_closed", "FingerMovements", "SelfRegulationSCP1", "KDD_Example", "eegmmidb_imagery")


def folds(name: str, X: np.ndarray, y: np.ndarray, meta: dict) -> tuple[list, np.ndarray | None, str]:
    """(train/test index pairs, groups or None, description) for one set."""
    if name == "eyes_open_closed":
        # Each file gives 50 consecutive 4 s windows (0-200 s), so index // 10 is a 40 s block of one file.
        groups = np.arange(len(y)) // 10
        return list(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(X, y, groups)), groups, \
            "5 folds grouped by 40 s blocks"
    if name == "eegmmidb_imagery":
        runs = sorted({src for src, _ in meta["trial_sources"]})
        groups = np.array([runs.index(src) for src, _ in meta["trial_sources"]])
        return list(LeaveOneGroupOut().split(X, y, groups)), groups, "leave one run out (3 folds)"
    return list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)), None, "stratified 5-fold"


def model_accuracy(X, y, groups, train_idx, test_idx, config: EEGConfig, opts: TrainOptions, tmp: Path) -> float:
    ckpt = tmp / "fold.pt"
    train(X[train_idx], y[train_idx], config, ckpt, opts, groups=None if groups is None else groups[train_idx],
          echo=lambda line: None)
    model, _ = load_model_from_checkpoint(ckpt, "cpu")
    return float((predict_logits(model, X[test_idx]).argmax(-1) == y[test_idx]).mean())


def sklearn_accuracy(estimator, X, y, train_idx, test_idx) -> float:
    flat = X.reshape(len(X), -1)  # (N, C*F*T)
    return float(estimator.fit(flat[train_idx], y[train_idx]).score(flat[test_idx], y[test_idx]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--frame-embed", type=int, default=64)
    p.add_argument("--drop", type=float, default=0.3)
    p.add_argument("--normalize", action="store_true")
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args()
    opts = TrainOptions(epochs=args.epochs, batch=args.batch, lr=args.lr, val_split=0.2, seed=args.seed, workers=0,
                        device="cpu")
    print(f"model: frame_embed={args.frame_embed} dropout={args.drop} normalize={args.normalize} "
          f"epochs={args.epochs} batch={args.batch} lr={args.lr}", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            t0 = time.perf_counter()
            X, y = np.load(BANDPOWER / name / "X.npy"), np.load(BANDPOWER / name / "y.npy")
            meta = json.loads((BANDPOWER / name / "meta.json").read_text())
            splits, groups, how = folds(name, X, y, meta)
            config = EEGConfig(n_classes=len(meta["classes"]), n_electrodes=X.shape[1], n_bands=X.shape[2],
                               frame_embed=args.frame_embed, dropout=args.drop, normalize=args.normalize)
            scores = {"model": [], "baseline": [], "chance": []}
            for train_idx, test_idx in splits:
                scores["model"].append(model_accuracy(X, y, groups, train_idx, test_idx, config, opts, Path(tmp)))
                baseline = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
                scores["baseline"].append(sklearn_accuracy(baseline, X, y, train_idx, test_idx))
                scores["chance"].append(sklearn_accuracy(DummyClassifier(), X, y, train_idx, test_idx))
            cells = {k: f"{np.mean(v):.3f} ± {np.std(v):.3f}" for k, v in scores.items()}
            rows.append(f"| {name} | {tuple(X.shape)} | {how} | {cells['model']} | {cells['baseline']} | "
                        f"{cells['chance']} | {time.perf_counter() - t0:.0f} s |")
            print(rows[-1], file=sys.stderr)
    print("| set | X (N, C, F, T) | folds | EEGModel | log-band-power LR | chance | time |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
