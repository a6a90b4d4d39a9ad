"""The named recipes shipped in the package: `eeg2arm recipes` lists them, `prepare --recipe NAME` uses them (flags given
beside it win), and each is the benchmark row it was measured as (benchmarks/recipes.toml)."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from eeg2arm.cli import cli
from eeg2arm.cli.common import command_context
from eeg2arm.estimator import recipe_lists
from eeg2arm.named_recipes import named_recipes, tomllib

ROWS = Path(__file__).resolve().parents[1] / "benchmarks" / "recipes.toml"
README = Path(__file__).resolve().parents[1] / "README.md"
DATA_SIZES = {"classes", "elec", "bands"}  # train flags that the data give, left out of a named recipe


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def eyes_files(bandpower_dir) -> list[Path]:
    return sorted((bandpower_dir.parent / "raw" / "eyes_open_closed").glob("*_raw.fif"))


def test_recipes_lists_each_one_line_with_signal_task_and_channels():
    result = invoke("recipes")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines] == list(named_recipes())
    assert {"eyes-alpha", "slow-potentials", "readiness-potential", "motor-imagery"} <= set(named_recipes())
    for line, recipe in zip(lines, named_recipes().values()):
        assert recipe.signal in line and f"task: {recipe.task}" in line and f"channels: {recipe.channels}" in line


def test_recipes_name_prints_the_commands_that_use_it():
    """`eeg2arm recipes NAME`: a CLI user had to dig the training arguments out of the package (stop 26)."""
    result = invoke("recipes", "motor-imagery-cross")
    assert result.exit_code == 0, result.output
    prepare, train = [line for line in result.output.splitlines() if line.startswith("eeg2arm ")]
    assert prepare == "eeg2arm prepare RECORDING... --out DIR --recipe motor-imagery-cross"
    assert train.endswith(" ".join(named_recipes()["motor-imagery-cross"].train)) and "--fit-readout" in train
    within = invoke("recipes", "motor-imagery").output  # measured with --no-groups: one run must not validate alone
    assert "--bands F --no-groups --cnn-time-pool 1" in within and "--no-groups" not in train
    assert "the validation split holds no trial out (--val-split 0)" in within
    eyes = invoke("recipes", "eyes-alpha").output
    assert "the validation split is drawn by trial (--no-groups)" in eyes
    unknown = invoke("recipes", "motor")
    assert unknown.exit_code == 2 and "no recipe is named 'motor': use one of eyes-alpha" in unknown.output


@pytest.mark.parametrize("name", list(named_recipes()))
def test_a_named_recipe_is_its_benchmark_row(name):
    """Parsed by the commands' own parsers, the prepare arguments equal the row's, and so do the train arguments but
    the sizes the data give: a row retuned in benchmarks/recipes.toml must be copied here too."""
    recipe, rows = named_recipes()[name], tomllib.loads(ROWS.read_text())
    row = rows[recipe.row]
    ours, theirs = (command_context("prepare", ["IN", "--out", "OUT", *args]).params
                    for args in (recipe.prepare, row["prepare"]))
    assert ours == theirs
    required = ["--x", "X", "--y", "Y", "--save", "S", "--classes", "2", "--elec", "1", "--bands", "1"]
    ours, theirs = (command_context("train", [*required, *args]).params for args in (recipe.train, row["train"]))
    assert {k: v for k, v in ours.items() if k not in DATA_SIZES} == \
        {k: v for k, v in theirs.items() if k not in DATA_SIZES}
    assert not any(f"--{flag}" in recipe.train for flag in DATA_SIZES)
    assert recipe.groups == row["groups"]  # Decoder(recipe=NAME) split as the row was measured (it never grouped)
    assert recipe_lists(name)[2] == row["groups"]


def test_the_readmes_cross_subject_training_is_the_named_recipes():
    """README.md's motor-imagery-cross commands train with the recipe's arguments (parsed by train's own parser), so
    a retuned recipe cannot leave the README behind; only --device is left to its default there (a GPU if any)."""
    text = README.read_text().replace("\\\n", " ")  # the shell's line continuations
    line = next(line for line in text.splitlines() if line.startswith("eeg2arm train --x mi/X.npy"))
    readme = command_context("train", shlex.split(line.split("#")[0])[2:]).params
    sizes = ["--classes", "2", "--elec", "21", "--bands", "1"]
    recipe = command_context("train", ["--x", "mi/X.npy", "--y", "mi/y.npy", "--save", "mi.pt", *sizes,
                                       *named_recipes()["motor-imagery-cross"].train]).params
    assert readme["fit_readout"] and readme["epochs"] == 0 and readme["elec"] == 21
    assert {k: v for k, v in readme.items() if k != "device"} == {k: v for k, v in recipe.items() if k != "device"}


def test_prepare_recipe_is_the_rows_flags_and_given_flags_win(eyes_files, tmp_path):
    """On the real eyes-open/closed recordings: --recipe eyes-alpha gives the arrays of its flags written out; a
    flag given beside it (--frame-step) replaces the recipe's, the rest of the recipe stays."""
    recipe = named_recipes()["eyes-alpha"]
    assert invoke("prepare", *eyes_files, "--out", tmp_path / "named", "--recipe", "eyes-alpha").exit_code == 0
    assert invoke("prepare", *eyes_files, "--out", tmp_path / "flags", *recipe.prepare).exit_code == 0
    X, X_flags = np.load(tmp_path / "named" / "X.npy"), np.load(tmp_path / "flags" / "X.npy")
    assert X.shape == (100, 32, 4, 15) and np.array_equal(X, X_flags)
    assert np.array_equal(np.load(tmp_path / "named" / "y.npy"), np.load(tmp_path / "flags" / "y.npy"))

    result = invoke("prepare", *eyes_files, "--out", tmp_path / "step", "--recipe", "eyes-alpha",
                    "--frame-step", "0.5")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "step" / "meta.json").read_text())
    assert meta["frame_step_s"] == 0.5 and meta["classes"] == ["eyes_open", "eyes_closed"]
    assert np.load(tmp_path / "step" / "X.npy").shape == (100, 32, 4, 8)


@pytest.mark.parametrize("case", ["unknown name", "with --like"])
def test_bad_recipe_is_one_line_exit_2(case, eyes_files, tmp_path):
    args = {"unknown name": ["--recipe", "telepathy"],
            "with --like": ["--recipe", "eyes-alpha", "--like", tmp_path / "meta.json"]}[case]
    (tmp_path / "meta.json").write_text("{}")
    result = invoke("prepare", *eyes_files, "--out", tmp_path / "out", *args)
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert ("eyes-alpha, slow-potentials" in result.output) if case == "unknown name" else "--recipe" in result.output
    assert not (tmp_path / "out").exists()


def test_a_row_may_name_a_recipe_among_its_prepare_arguments():
    """What benchmarks/accuracy.py reads a row's events, span and channels from: --recipe filled in, the row's own
    flags over it."""
    from eeg2arm.cli.data import recipe_params

    row = recipe_params(["--recipe", "motor-imagery", "--group-by", "subject", "--tmax", "3"])
    named = recipe_params(list(named_recipes()["motor-imagery"].prepare))
    assert row["events"] == ("T1=left_fist", "T2=right_fist") and row["channels"] == named["channels"]
    assert row["group_by"] == "subject" and row["tmax"] == 3.0 and row["tmin"] == 0.0
    assert {k: v for k, v in row.items() if k not in ("recipe_name", "group_by", "tmax")} == \
        {k: v for k, v in named.items() if k not in ("recipe_name", "group_by", "tmax")}
