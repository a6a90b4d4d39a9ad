"""benchmarks/peers.py, the field's methods that EEGModel is measured against: each classical peer decodes a real
motor-rhythm fold and not the same fold with its training labels shuffled, Euclidean alignment re-centres each
subject, and braindecode's deep peers train with their documented settings. The peers come with the `[bench]` extra;
a peer whose library is missing skips, saying so."""
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import accuracy  # noqa: E402  (benchmarks/accuracy.py: its folds)
import peers  # noqa: E402
from accuracy import tomllib  # noqa: E402

ROW = "eegmmidb_within_mu"
SFREQ = 160.0  # EEGMMIDB's rate
SHUFFLES = 8


@pytest.fixture(scope="module")
def fold() -> accuracy.Fold:
    """S002's first fold of the motor-rhythm row: imagery runs 8 and 12 and the three executed runs train (75
    trials, the 21 FC/C/CP channels), imagery run 4 tests (15 trials), as the benchmark folds it."""
    recipe = tomllib.loads((REPO / "benchmarks" / "recipes.toml").read_text())[ROW]
    return next(accuracy.eegmmidb_folds(ROW, recipe["prepare"], ("S002",), recipe["executed"]))


def run_or_skip(method: str, step: Callable[[], Any]) -> Any:
    """step(); a skip naming the missing library where the peer's `[bench]` library is not installed."""
    try:
        return step()
    except ModuleNotFoundError as e:
        pytest.skip(f"{method} needs the [bench] extra: {e.name} is not installed")


@pytest.mark.parametrize("method", ["csp", "fbcsp", "ts", "minirocket"])
def test_each_classical_peer_decodes_a_real_fold_and_not_its_shuffled_labels(fold, method):
    """Right for at least 12 of the 15 test trials; with the training labels shuffled, at chance on average (one
    shuffle alone can reach 0.73 on 15 trials)."""
    def accuracy_with(labels: np.ndarray) -> float:
        return peers.peer_accuracy(method, ROW, SFREQ, fold.X_train, labels, fold.X_test, fold.y_test)

    scored = run_or_skip(method, lambda: accuracy_with(fold.y_train))
    rng = np.random.default_rng(0)
    shuffled = np.mean([accuracy_with(rng.permutation(fold.y_train)) for _ in range(SHUFFLES)])
    majority = peers.peer_accuracy("chance", ROW, SFREQ, fold.X_train, fold.y_train, fold.X_test, fold.y_test)
    assert fold.X_test.shape == (15, 21, 640) and majority < 0.6  # the test run holds both classes, 7 and 8
    assert scored >= 0.8 and shuffled <= 0.65, (scored, shuffled)


def test_euclidean_alignment_whitens_each_subject_on_its_own():
    """Two subjects' trials, aligned by their subject: each subject's mean trial covariance becomes the identity."""
    recipe = tomllib.loads((REPO / "benchmarks" / "recipes.toml").read_text())["eegmmidb_cross_mu"]
    fold = next(accuracy.eegmmidb_folds("eegmmidb_cross_mu", recipe["prepare"], ("S001", "S002", "S003", "S004"),
                                        False))
    X = peers.band_passed(fold.X_train, SFREQ, (8.0, 30.0))
    aligned = peers.euclidean_aligned(X, fold.g_train)
    assert len(np.unique(fold.g_train)) >= 2
    for subject in np.unique(fold.g_train):
        trials = aligned[fold.g_train == subject]
        mean = np.mean([x @ x.T / x.shape[1] for x in trials], axis=0)
        np.testing.assert_allclose(mean, np.eye(len(mean)), atol=1e-6)
        raw = X[fold.g_train == subject]
        assert not np.allclose(np.mean([x @ x.T / x.shape[1] for x in raw], axis=0), np.eye(len(mean)), atol=0.1)


def test_each_peer_applies_where_its_method_can_read_the_set():
    assert peers.applies("fbcsp", ROW, groups=False) and not peers.applies("fbcsp", "SelfRegulationSCP1", False)
    assert peers.applies("ea_ts", "eegmmidb_cross_mu", groups=True) and not peers.applies("ea_ts", ROW, False)
    assert not peers.applies("ea_ts", "FingerMovements", groups=True)  # slow potentials: no rhythm to align


@pytest.mark.parametrize("method", peers.DEEP)
def test_the_deep_peers_train_with_their_documented_settings(fold, method, monkeypatch):
    """EEGNet and ShallowFBCSPNet as braindecode's trialwise tutorial trains them (AdamW, lr 0.0625 * 0.01, batch
    64, cosine annealing); two epochs here (the benchmark's budget is DEEP_EPOCHS) move every layer's weights."""
    monkeypatch.setattr(peers, "DEEP_EPOCHS", 2)
    model = run_or_skip(method, lambda: peers.deep_classifier(method, n_channels=21, n_times=640, n_classes=2))
    scheduler = dict(model.callbacks)["lr_scheduler"]
    assert (scheduler.policy, scheduler.kwargs) == ("CosineAnnealingLR", {"T_max": 1})
    model.initialize()
    group = model.optimizer_.param_groups[0]
    assert isinstance(model.optimizer_, torch.optim.AdamW) and (group["lr"], group["weight_decay"]) == (0.0625 * 0.01, 0)
    assert (model.batch_size, model.max_epochs) == (64, 2)
    before = {name: p.detach().clone() for name, p in model.module_.named_parameters()}
    X = peers.band_passed(fold.X_train, SFREQ, (8.0, 30.0)).astype(np.float32)
    model.partial_fit(X, fold.y_train.astype(np.int64))  # fit would initialize again
    moved = [name for name, p in model.module_.named_parameters() if not torch.equal(p.detach(), before[name])]
    assert moved and len(moved) == len(before), set(before) - set(moved)
    probabilities = model.predict_proba(X[:5])
    assert probabilities.shape == (5, 2) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
