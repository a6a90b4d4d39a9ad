"""benchmarks/criterion.py: the inner splits a recipe's settings are chosen on never read a benchmark test fold."""
import argparse
import subprocess
import sys
from itertools import islice

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import accuracy  # noqa: E402
import criterion  # noqa: E402

RECIPES = accuracy.tomllib.loads((REPO / "benchmarks" / "recipes.toml").read_text())


def rows_of(X: np.ndarray) -> set[bytes]:
    return {trial.tobytes() for trial in X}


def test_fingermovements_inner_blocks_lie_inside_each_folds_training_blocks(tmp_path):
    name = "FingerMovements"
    for k, outer in enumerate(islice(accuracy.folds(name, RECIPES[name], tmp_path, accuracy.SUBJECTS)[0], 2)):
        inner = list(criterion.epochs_inner(name, outer, tmp_path, k))
        assert len(inner) == 4
        held = [fold.X_test for fold in inner]
        assert rows_of(np.concatenate(held)) == rows_of(outer.X_train)  # each training trial held out once
        assert not rows_of(np.concatenate([f.X_train for f in inner])) & rows_of(outer.X_test)
        for fold in inner:  # contiguous blocks in recording order, as the outer folds are
            start = next(i for i, x in enumerate(outer.X_train) if x.tobytes() == fold.X_test[0].tobytes())
            assert np.array_equal(outer.X_train[start:start + len(fold.X_test)], fold.X_test)
            assert rows_of(fold.X_train) | rows_of(fold.X_test) == rows_of(outer.X_train)


def test_a_stratified_sets_inner_folds_cover_its_training_trials_once(tmp_path):
    name = "SelfRegulationSCP1"
    outer = next(accuracy.folds(name, RECIPES[name], tmp_path, accuracy.SUBJECTS)[0])
    inner = list(criterion.epochs_inner(name, outer, tmp_path, 0))
    held = np.concatenate([fold.X_test for fold in inner])
    assert len(inner) == 4 and len(held) == len(outer.X_train) and rows_of(held) == rows_of(outer.X_train)
    assert not rows_of(np.concatenate([f.X_train for f in inner])) & rows_of(outer.X_test)
    for fold in inner:  # both classes on each side, in the training side's proportions
        assert abs(fold.y_test.mean() - outer.y_train.mean()) < 0.05 and set(fold.y_train) == {0, 1}


def test_eegmmidb_inner_splits_never_read_a_test_run_or_subject(tmp_path):
    subjects = accuracy.SUBJECTS[:4]
    for name in ("eegmmidb_within_mu", "eegmmidb_cross_mu"):
        recipe = RECIPES[name]
        data = accuracy.EegmmidbTrials(recipe["prepare"], subjects, recipe["executed"])
        for outer in islice(accuracy.folds(name, recipe, tmp_path, subjects)[0], 2):
            inner = list(criterion.eegmmidb_inner(name, outer, data))
            assert len(inner) == (2 if name.endswith("within_mu") else 3)
            for fold in inner:
                files = set(fold.train_files) | set(fold.test_files)
                assert files <= set(outer.train_files) and not files & set(outer.test_files)
                assert not set(fold.train_files) & set(fold.test_files)
                assert all(path.parent.parent.name == "eegmmidb" for path in fold.test_files)  # imagery only
                if name.endswith("cross_mu"):  # whole subjects left out
                    assert not {p.stem[:4] for p in fold.train_files} & {p.stem[:4] for p in fold.test_files}
                else:  # the subject's executed runs stay in training
                    assert sum(p.parent.parent.name == "eegmmidb_executed" for p in fold.train_files) == 3


def test_each_seed_is_given_last_so_that_it_wins():
    recipe = {"prepare": ["--features", "slow"], "train": ["--epochs", "5"], "groups": False}
    each = criterion.seeded(recipe, "--epochs 9 --layers 1", 2)
    assert each["train"] == ["--epochs", "5", "--epochs", "9", "--layers", "1", "--seed", "2"]
    assert recipe["train"] == ["--epochs", "5"] and each["prepare"] == recipe["prepare"]
    assert criterion.seed_list("1337,1,2") == (1337, 1, 2)
    both = criterion.seeded(recipe, "--bands 1 prepare: --bands b:8-30", 2)
    assert both["train"] == ["--epochs", "5", "--bands", "1", "--seed", "2"]
    assert both["prepare"] == ["--features", "slow", "--bands", "b:8-30"] and recipe["prepare"] == ["--features", "slow"]
    for bad in ("1337,x", "1,1", "", "-1,2"):
        with pytest.raises(argparse.ArgumentTypeError):
            criterion.seed_list(bad)


@pytest.mark.parametrize("variant, message", [
    ("prepare: --tmax 3", "may change the features, not the trials"),
    ("prepare: --event=T0=rest", "may change the features, not the trials"),
    ("--epochs 2 prepare:", "after one 'prepare:'"),
    ("prepare: --bands a:8-30 prepare: --spatial csp:4", "after one 'prepare:'"),
])
def test_a_variant_that_would_cut_other_trials_is_refused(variant, message):
    """The inner splits and the readout are cut with the recipe's trials: a variant may change features only."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "criterion.py"), "eegmmidb_within_mu",
                           f"--variant={variant}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_the_table_prints_the_paired_difference_to_four_decimals_and_counts_no_float_noise_as_won():
    """Stop 28: +0.00206 ± 0.00197 printed as +0.002 ± 0.002, and the same trial counts spread differently over
    three seeds counted as splits won or lost."""
    tie = [float(np.mean(np.array(counts) / 135)) for counts in ([60, 60, 76], [60, 76, 60])]
    assert tie[0] != tie[1]  # 0.48395061728395056 against 0.48395061728395067
    recipe = [0.5, 0.6, 0.7, tie[0]]
    variant = [0.51, 0.6, 0.69, tie[1]]  # + 0.01, a tie, - 0.01, a tie in exact arithmetic
    line = criterion.table({"the recipe": recipe, "V": variant})[-1]
    assert line.startswith("| V | ") and "| +0.0000 ± 0.0041 | 1 / 1 |" in line


def test_readout_only_scores_each_settings_own_windows_and_trains_nothing(monkeypatch):
    """--readout-only: the recipe's and each variant's prepare arguments reach the readout; EEGModel never trains."""
    seen = []
    monkeypatch.setattr(criterion, "inner_folds", lambda *args: iter(["fold 1", "fold 2"]))
    monkeypatch.setattr(criterion, "readout_accuracy", lambda fold, recipe: seen.append(recipe["prepare"]) or 0.5)
    monkeypatch.setattr(criterion, "eegmodel_accuracy", lambda *args: pytest.fail("EEGModel trained"))
    recipe = RECIPES["eegmmidb_cross_mu"]
    scores = criterion.criterion("eegmmidb_cross_mu", recipe, ["prepare: --spatial csp:8"], accuracy.SUBJECTS,
                                 readout_only=True)
    assert scores == {"the recipe": [0.5, 0.5], "prepare: --spatial csp:8": [0.5, 0.5]}
    assert seen == [recipe["prepare"], [*recipe["prepare"], "--spatial", "csp:8"]] * 2


@pytest.mark.parametrize("flags", [["--variant=--elec 8 prepare: --spatial csp:8"], ["--seeds", "1,2"]])
def test_readout_only_refuses_what_it_would_ignore(flags):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "criterion.py"), "eegmmidb_cross_mu",
                           "--readout-only", *flags], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--readout-only trains nothing" in done.stderr, done.stderr
