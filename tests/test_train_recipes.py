"""benchmarks/recipes.toml: it parses, holds what the accuracy benchmark needs, and the CLI accepts every flag."""
import os
import re
import subprocess
import sys

import click
import mne
import numpy as np
import pytest
import scipy
import sklearn
import torch

from eeg2arm.checkpoint import load_model_from_checkpoint
from eeg2arm.cli import cli
from eeg2arm.infer import predict_logits

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import accuracy  # noqa: E402  (benchmarks/accuracy.py: its fold and command helpers)
from accuracy import tomllib  # noqa: E402

RECIPES = tomllib.loads((REPO / "benchmarks" / "recipes.toml").read_text())
SETS = ("eyes_open_closed", "SelfRegulationSCP1", "FingerMovements", "KDD_Example", "eegmmidb_within",
        "eegmmidb_cross", "eegmmidb_within_mu", "eegmmidb_cross_mu")
NEW_SUBJECT = "eegmmidb_new_subject_mu"
MOTOR = {"FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "CP5", "CP3", "CP1",
         "CPz", "CP2", "CP4", "CP6"}  # the FC, C and CP rows


def test_every_set_has_a_recipe_of_the_agreed_shape():
    assert set(RECIPES) == {*SETS, NEW_SUBJECT}
    for name in SETS:
        recipe = RECIPES[name]
        assert set(recipe) - {"finetune", "executed"} == {"prepare", "train", "groups"}, name
        assert isinstance(recipe.get("executed", False), bool), name
        assert isinstance(recipe["groups"], bool), name
        assert all(isinstance(a, str) for key in ("prepare", "train") for a in recipe[key]), name
        # the inputs are the benchmark's: the recipe holds everything else
        assert not {"--out", "--like"} & set(recipe["prepare"]), name
        assert not {"--x", "--y", "--save", "--groups", "--init", "--resume"} & set(recipe["train"]), name
    for cross in ("eegmmidb_cross", "eegmmidb_cross_mu"):
        assert RECIPES[cross]["groups"] and "--group-by" in RECIPES[cross]["prepare"]
    assert RECIPES[NEW_SUBJECT]["cross"] in SETS and RECIPES[NEW_SUBJECT]["calibration"] == 10
    assert accuracy.SETS == (*SETS, NEW_SUBJECT)  # the benchmark runs every recipe


@pytest.mark.parametrize("name", ["eegmmidb_within_mu", "eegmmidb_cross_mu"])
def test_the_motor_rhythm_recipes_read_no_eye_channel_and_nothing_below_8_hz(name):
    """No channel outside the FC, C and CP rows (and no reference that would mix others in), every filter and band
    at 8 Hz or above: the eyes stay out."""
    params = accuracy.prepare_params(RECIPES[name]["prepare"])
    assert set(params["channels"].split(",")) == MOTOR and params["reference"] == "none"
    assert float(params["bandpass"].split("-")[0]) >= 8
    assert all(float(band.split(":")[1].split("-")[0]) >= 8 for band in params["bands"].split(","))
    assert params["features"] == "bandpower" and params["spatial"].startswith(("csp:", "csp-tangent:"))


def test_the_motor_rhythm_peers_see_only_the_recipes_channels():
    """eegmmidb_*_mu: the peers' trials hold the recipe's 21 sensorimotor channels, as EEGModel's X does."""
    channels = accuracy.kept_channels(RECIPES["eegmmidb_within_mu"]["prepare"])
    assert channels is not None and len(channels) == 21 and not any(c.startswith(("F7", "F8", "T")) for c in channels)
    X, y = accuracy.edf_trials(accuracy.RAW / "eegmmidb" / "S001" / "S001R04.edf", {"T1": 0, "T2": 1}, 0.0, 4.0,
                               channels)
    assert X.shape == (len(y), 21, 640) and set(y) == {0, 1}


def parsed(command: str, args: list[str]) -> dict:
    """Parse args as click would for `eeg2arm COMMAND` without running it: unknown flags and bad values raise."""
    with cli.commands[command].make_context(command, args, resilient_parsing=False) as ctx:
        return ctx.params


def test_the_new_subject_recipe_aligns_and_calibrates_the_cross_subject_model(tmp_path):
    """The new-subject row adapts the cross model to the subject: by its alignment (the cross recipe re-centres each
    recording from its own signal), and by `eeg2arm calibrate` on the calibration trials, which needs the cross
    model's readout fitted alone on two classes."""
    row = RECIPES[NEW_SUBJECT]
    assert accuracy.prepare_params(RECIPES[row["cross"]]["prepare"])["align"] == "euclidean"
    assert row["calibration"] >= 1 and isinstance(row["calibrate"], list)
    params = parsed("calibrate", ["--ckpt", str(tmp_path / "c.pt"), "--x", str(tmp_path / "X.npy"), "--y",
                                  str(tmp_path / "y.npy"), "--save", str(tmp_path / "m.pt"), *row["calibrate"]])
    assert params["weight"] > 0
    cross = parsed("train", ["--x", "X.npy", "--y", "y.npy", "--save", "m.pt", *RECIPES[row["cross"]]["train"]])
    assert cross["fit_readout"] and cross["epochs"] == 0 and cross["classes"] == 2


@pytest.mark.parametrize("name", SETS)
def test_the_cli_accepts_every_train_flag_of_the_recipe(name, tmp_path):
    recipe = RECIPES[name]
    required = ["--x", str(tmp_path / "X.npy"), "--y", str(tmp_path / "y.npy"), "--save", str(tmp_path / "m.pt")]
    params = parsed("train", required + recipe["train"])
    assert params["device"] == "cpu" and params["workers"] == 0  # the benchmark shares 2 cores
    if "finetune" in recipe:
        assert parsed("train", required + recipe["finetune"] + ["--init", str(tmp_path / "c.pt")])["init_path"]


@pytest.mark.parametrize("name", SETS)
def test_the_cli_accepts_every_prepare_flag_of_the_recipe(name, tmp_path):
    params = parsed("prepare", [str(tmp_path / "in.edf"), "--out", str(tmp_path / "out"), *RECIPES[name]["prepare"]])
    assert params["events"]


def test_a_misspelt_flag_would_be_caught(tmp_path):
    with pytest.raises(click.NoSuchOption):
        parsed("train", ["--x", "X.npy", "--y", "y.npy", "--save", "m.pt", "--classes", "2", "--elec", "4",
                         "--bands", "1", "--mix-up", "0.4"])


def test_the_benchmark_runs_a_recipe_end_to_end_on_one_fold(tmp_path):
    """benchmarks/accuracy.py's Decoder on a KDD_Example fold (one epoch) scores what prepare -> train -> prepare
    --like -> evaluate score, on the peers' trials, label for label."""
    recipe = {**RECIPES["KDD_Example"], "train": RECIPES["KDD_Example"]["train"] + ["--epochs", "1"]}
    fold = next(accuracy.folds("KDD_Example", recipe, tmp_path, accuracy.SUBJECTS)[0])
    assert len(fold.y_train) == 32 and len(fold.y_test) == 8 and fold.X_test.shape == (8, 4, 100)
    scored = accuracy.eegmodel_accuracy(fold, recipe)
    accuracy.eeg2arm("prepare", *fold.train_files, "--out", tmp_path / "train", *recipe["prepare"])
    accuracy.eeg2arm("train", "--x", tmp_path / "train" / "X.npy", "--y", tmp_path / "train" / "y.npy", "--save",
                     tmp_path / "model.pt", *recipe["train"])
    accuracy.eeg2arm("prepare", *fold.test_files, "--out", tmp_path / "test", "--like", tmp_path / "train" / "meta.json")
    assert np.array_equal(np.load(tmp_path / "test" / "y.npy"), fold.y_test)  # the peers' trials
    model, _ = load_model_from_checkpoint(tmp_path / "model.pt", "cpu")
    predicted = predict_logits(model, np.load(tmp_path / "test" / "X.npy")).argmax(-1)
    assert scored == pytest.approx((predicted == fold.y_test).mean())


def test_the_readout_column_reads_the_windows_prepare_writes(tmp_path):
    """benchmarks/accuracy.py's linear readout of EEGModel's features: on S001's first eegmmidb_within_mu fold (CSP
    filters and alignment fitted on the training runs) its windows are prepare's and `prepare --like`'s, label for
    label; on KDD_Example, whose classes its features separate, it scores above chance."""
    recipe = RECIPES["eegmmidb_within_mu"]
    fold = next(accuracy.eegmmidb_folds("eegmmidb_within_mu", recipe["prepare"], ("S001",), True))
    X_train, y_train, X_test, y_test = accuracy.recipe_windows(fold, recipe)
    accuracy.eeg2arm("prepare", *sorted(fold.train_files, key=str), "--out", tmp_path / "train", *recipe["prepare"])
    accuracy.eeg2arm("prepare", *fold.test_files, "--out", tmp_path / "test", "--like",
                     tmp_path / "train" / "meta.json")
    for side, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        assert np.array_equal(np.load(tmp_path / side / "y.npy"), y)
        np.testing.assert_allclose(np.load(tmp_path / side / "X.npy"), X, atol=1e-5)
    kdd = next(accuracy.folds("KDD_Example", RECIPES["KDD_Example"], tmp_path, accuracy.SUBJECTS)[0])
    assert accuracy.readout_accuracy(kdd, RECIPES["KDD_Example"]) > 0.75


def test_an_executed_row_trains_on_the_executed_runs_and_tests_on_imagery_only():
    """eegmmidb_within_mu: S001's fold 1 trains on imagery runs 8 and 12 and executed runs 3, 7, 11."""
    recipe = RECIPES["eegmmidb_within_mu"]
    assert recipe["executed"]
    fold = next(accuracy.eegmmidb_folds("eegmmidb_within_mu", recipe["prepare"], ("S001",), True))
    assert [f.name for f in fold.train_files] == ["S001R08.edf", "S001R12.edf", "S001R03.edf", "S001R07.edf",
                                                 "S001R11.edf"]
    assert [f.name for f in fold.test_files] == ["S001R04.edf"] and "eegmmidb_executed" in str(fold.train_files[2])
    assert len(fold.y_train) == len(fold.g_train) == 75 and fold.X_train.shape[1:] == (21, 640)


def test_the_benchmark_prints_the_machine_and_versions_its_numbers_depend_on():
    """Stop 28: FingerMovements' row moved by 0.029 between two machines with the same code; the table now says
    which machine and which numpy, scipy, torch, mne and scikit-learn made it."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "accuracy.py"), "--sets", "KDD_Example",
                           "--methods", "chance"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"total \d+ s on .+, \d+ cores, (load [\d.]+, )?\d+ torch threads; Python \S+, .+", last), last
    for name, module in {"torch": torch, "numpy": np, "scipy": scipy, "mne": mne, "scikit-learn": sklearn}.items():
        assert f"{name} {module.__version__}" in last


def test_every_benchmark_says_its_machine_in_one_form():
    """benchmarks/machine.py: the CPU, this process's cores, the load, the details, then Python and the versions given;
    every script under benchmarks/ that times something prints it (none its own variant of it)."""
    import machine  # noqa: E402  (benchmarks/, on sys.path above)

    line = machine.machine_line({"torch": "2.13.0+cpu", **machine.installed_versions("numpy", "onnxruntime")},
                                "1 thread")
    cpu, rest = line.split(", ", 1)
    assert cpu == machine.cpu_model() and cpu
    assert re.fullmatch(r"\d+ cores, (load [\d.]+, )?1 thread; Python \S+, torch 2\.13\.0\+cpu, numpy \S+, "
                        r"onnxruntime(-gpu)? \S+", rest), line  # the distribution installed on this platform
    assert machine.usable_cores() <= (os.cpu_count() or 1) and f"numpy {np.__version__}" in line
    for script in sorted((REPO / "benchmarks").glob("bench_*.py")):
        text = script.read_text()
        assert "machine_line(" in text and "platform." not in text and "cpu_count" not in text, script.name
