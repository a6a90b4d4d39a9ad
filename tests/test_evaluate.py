"""Leakage-safe training (--groups), the data meta in the checkpoint, and `eeg2arm evaluate` (scores and figures)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, cohen_kappa_score, confusion_matrix,
                             precision_score, recall_score)

from eeg2arm.checkpoint import load_model_from_checkpoint, read_checkpoint
from eeg2arm.cli import cli
from eeg2arm.config import EEGConfig
from eeg2arm.infer import predict_logits

MMI_CLASSES = ("left_fist_imagery", "right_fist_imagery")


def invoke(*args) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture(scope="module")
def mmi(bandpower_dir, tmp_path_factory) -> Path:
    """eegmmidb S001 runs 4, 8, 12 prepared by `eeg2arm prepare`: groups 0, 1, 2 = the three runs."""
    out = tmp_path_factory.mktemp("mmi") / "prepared"
    files = sorted((bandpower_dir.parent / "raw" / "eegmmidb" / "S001").glob("*.edf"))
    result = invoke("prepare", *files, "--out", out, "--event", f"T1={MMI_CLASSES[0]}", "--event",
                    f"T2={MMI_CLASSES[1]}", "--tmin", 0, "--tmax", 4)
    assert result.exit_code == 0, result.output
    return out


def train_args(data: Path, save: Path) -> list:
    return ["train", "--x", data / "X.npy", "--y", data / "y.npy", "--save", save, "--classes", 2, "--elec", 64,
            "--bands", 4, "--epochs", 1, "--frame-embed", 64, "--batch", 16, "--workers", 0, "--device", "cpu"]


@pytest.fixture(scope="module")
def grouped_ckpt(mmi, tmp_path_factory) -> Path:
    save = tmp_path_factory.mktemp("grouped") / "ckpt.pt"
    result = invoke(*train_args(mmi, save), "--groups", mmi / "groups.npy")
    assert result.exit_code == 0, result.output
    return save


def test_grouped_split_keeps_groups_apart(mmi, grouped_ckpt):
    groups = np.load(mmi / "groups.npy")
    assert set(groups) == {0, 1, 2}
    val = np.array(read_checkpoint(grouped_ckpt)["metrics"]["val_indices"])
    train = np.setdiff1d(np.arange(len(groups)), val)
    assert len(val) and len(train)
    assert not set(groups[val]) & set(groups[train])


def test_the_groups_beside_x_keep_the_validation_split_honest_by_default(mmi, grouped_ckpt, tmp_path):
    """Without --groups, train takes the groups.npy beside X.npy (as evaluate does): the same split as --groups;
    --no-groups and --val-last split by trial; both --groups and --no-groups is refused."""
    by_default = invoke(*train_args(mmi, tmp_path / "d.pt"))
    assert by_default.exit_code == 0, by_default.output
    assert f"INFO: validation split by group (recording or subject): {mmi / 'groups.npy'}" in by_default.output
    val = read_checkpoint(tmp_path / "d.pt")["metrics"]["val_indices"]
    assert val == read_checkpoint(grouped_ckpt)["metrics"]["val_indices"]
    groups = np.load(mmi / "groups.npy")
    mixed = invoke(*train_args(mmi, tmp_path / "n.pt"), "--no-groups")
    assert mixed.exit_code == 0 and "validation split by group" not in mixed.output
    val = np.array(read_checkpoint(tmp_path / "n.pt")["metrics"]["val_indices"])
    assert set(groups[val]) & set(np.delete(groups, val))  # runs on both sides
    last = invoke(*train_args(mmi, tmp_path / "l.pt"), "--val-last")
    assert last.exit_code == 0, last.output
    assert read_checkpoint(tmp_path / "l.pt")["metrics"]["val_indices"] == list(range(len(groups) - 9, len(groups)))
    undone = invoke(*train_args(mmi, tmp_path / "u.pt"), "--val-last", "--no-val-last")  # a recipe's, undone
    assert undone.exit_code == 0, undone.output
    assert read_checkpoint(tmp_path / "u.pt")["metrics"]["val_indices"] == \
        read_checkpoint(tmp_path / "d.pt")["metrics"]["val_indices"]
    one_line_error(invoke(*train_args(mmi, tmp_path / "x.pt"), "--groups", mmi / "groups.npy", "--no-groups"))


def test_a_grouped_split_that_cannot_keep_every_class_falls_back_with_one_warning(bandpower_dir, tmp_path):
    """The embedded eyes sample has one recording per class: a split by recording would validate on one class."""
    from eeg2arm.sample import SAMPLE_DIR

    data = tmp_path / "eyes"
    shutil.copytree(SAMPLE_DIR, data)
    np.save(data / "groups.npy", np.load(data / "y.npy").astype(np.int64))  # group = recording = class
    result = invoke("train", "--x", data / "X.npy", "--y", data / "y.npy", "--save", tmp_path / "e.pt", "--classes",
                    2, "--elec", 32, "--bands", 4, "--epochs", 1, "--frame-embed", 32, "--workers", 0,
                    "--device", "cpu")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("WARNING: a split by group")]
    assert warnings == ["WARNING: a split by group cannot keep every class on both sides (2 groups): split by "
                        "window instead"]
    y = np.load(data / "y.npy")
    val = read_checkpoint(tmp_path / "e.pt")["metrics"]["val_indices"]
    assert set(y[val]) == {0, 1}


def test_checkpoint_records_the_data_meta(mmi, grouped_ckpt):
    meta = json.loads((mmi / "meta.json").read_text())
    config = read_checkpoint(grouped_ckpt)["config"]
    config = EEGConfig.from_dict(config)
    assert config.class_names == MMI_CLASSES
    assert config.channel_names == tuple(meta["channels"]) and len(config.channel_names) == 64
    assert config.band_names == ("theta", "alpha", "beta", "gamma")
    assert config.band_edges == ((4.0, 8.0), (8.0, 13.0), (13.0, 30.0), (30.0, 45.0))
    assert (config.sfreq, config.frame_window, config.frame_step) == (160.0, 0.5, 0.25)


def test_infer_prints_the_class_name(mmi, grouped_ckpt):
    result = invoke("infer", "--ckpt", grouped_ckpt, "--x", mmi / "X.npy", "--device", "cpu")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 45
    for line in lines:
        m = re.fullmatch(r"\[sample \d+\] pred=(\d) conf=[0-9.]+ label=(\w+)", line)
        assert m and m.group(2) == MMI_CLASSES[int(m.group(1))], line


def test_config_data_fields_round_trip():
    config = EEGConfig(n_classes=2, n_electrodes=3, n_bands=2, class_names=["a", "b"], channel_names=["Oz", "O1", "O2"],
                       band_names=["alpha", "beta"], band_edges=[[8, 13], [13, 30]], sfreq=250, frame_window=0.5,
                       frame_step=0.25)
    assert config.band_edges == ((8.0, 13.0), (13.0, 30.0)) and config.channel_names == ("Oz", "O1", "O2")
    d = config.to_dict()
    assert json.loads(json.dumps(d)) == d and d["band_edges"] == [[8.0, 13.0], [13.0, 30.0]]
    assert EEGConfig.from_dict(d) == config and EEGConfig.from_json(config.to_json()) == config
    assert EEGConfig.from_dict(EEGConfig(n_classes=2, n_electrodes=3, n_bands=2).to_dict()).sfreq is None


@pytest.mark.parametrize("field, value", [("channel_names", ["a", "b"]), ("band_edges", [[8, 13], [30, 13]]),
                                          ("sfreq", -1.0), ("band_names", ["x"])])
def test_config_rejects_data_fields_that_do_not_fit(field, value):
    from eeg2arm.errors import UserInputError
    with pytest.raises(UserInputError, match=field):
        EEGConfig(n_classes=2, n_electrodes=3, n_bands=2, **{field: value})


BEFORE_RECIPES = {"classes": ["a", "b"], "channels": ["C3", "Cz", "C4"], "sfreq": 160.0, "frame_window_s": 0.5,
                  "frame_step_s": 0.25, "bands": [["alpha", 8, 13], ["beta", 13, 30]]}  # no features, no reference


@pytest.mark.parametrize("model, data, refused", [
    ({"reference": "average"}, {}, "reference=none but the model was trained on average"),
    ({}, {"reference": "average", "features": ["bandpower"]}, "reference=average but the model was trained on none"),
    ({"features": ["bandpower"], "reference": "none"}, {}, None),  # the defaults said out loud on one side
    ({}, {"frame_step_s": 0.5}, "frame_step=0.5 but the model was trained on 0.25"),
    ({}, {"classes": ["a", "b", "rest"]}, "class_names=('a', 'b', 'rest') but the model was trained on ('a', 'b')"),
    ({}, {"channels": ["C3", "C4"]}, "input_channels=('C3', 'C4') but the model was trained on ('C3', 'Cz', 'C4')"),
])
def test_evaluate_compares_whole_recipes_even_from_before_recipes(model, data, refused):
    """A meta.json or model made before recipes records band power of the unreferenced signal: each side's recipe
    is compared with its defaults filled in, not only the keys the data's meta.json happens to have."""
    from eeg2arm.data import data_fields
    from eeg2arm.errors import UserInputError
    from eeg2arm.evaluate import check_data_meta

    config = EEGConfig(n_classes=2, n_electrodes=3, n_bands=2, **{**data_fields(BEFORE_RECIPES), **model})
    fields = data_fields({**BEFORE_RECIPES, **data})
    if refused is None:
        check_data_meta(config, fields)
    else:
        with pytest.raises(UserInputError, match=re.escape(f"the data's meta.json has {refused}: prepare")):
            check_data_meta(config, fields)


def test_train_rejects_bad_groups_and_meta(mmi, tmp_path):
    np.save(tmp_path / "groups.npy", np.zeros(7, dtype=np.int64))
    line = one_line_error(invoke(*train_args(mmi, tmp_path / "c.pt"), "--groups", tmp_path / "groups.npy"))
    assert "groups" in line
    np.save(tmp_path / "groups.npy", np.zeros(45, dtype=np.int64))
    assert "single group" in one_line_error(invoke(*train_args(mmi, tmp_path / "c.pt"), "--groups",
                                                   tmp_path / "groups.npy"))
    np.save(tmp_path / "groups.npy", np.arange(45) % 2)  # two groups: a 0.9 validation share takes both
    assert "leaves none for training" in one_line_error(invoke(*train_args(mmi, tmp_path / "c.pt"), "--groups",
                                                               tmp_path / "groups.npy", "--val-split", "0.9"))
    meta = json.loads((mmi / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "classes": ["a", "b", "c"]}))
    line = one_line_error(invoke(*train_args(mmi, tmp_path / "c.pt"), "--meta", tmp_path / "meta.json"))
    assert "meta.json does not fit" in line
    assert not (tmp_path / "c.pt").exists()


def test_evaluate_prints_scikit_learn_scores(trained, bandpower_dir):
    ckpt, _ = trained
    X, y = np.load(bandpower_dir / "X.npy"), np.load(bandpower_dir / "y.npy")
    result = invoke("evaluate", "--ckpt", ckpt, "--x", bandpower_dir / "X.npy", "--y", bandpower_dir / "y.npy",
                    "--device", "cpu")
    assert result.exit_code == 0, result.output
    model, _ = load_model_from_checkpoint(ckpt, "cpu")
    pred = predict_logits(model, X).argmax(-1)
    lines = result.output.strip().splitlines()
    assert lines[0] == (f"n=100 accuracy={accuracy_score(y, pred):.4f} "
                        f"balanced_accuracy={balanced_accuracy_score(y, pred):.4f} "
                        f"kappa={cohen_kappa_score(y, pred):.4f}")
    precision = precision_score(y, pred, average=None, labels=[0, 1], zero_division=0)
    recall = recall_score(y, pred, average=None, labels=[0, 1], zero_division=0)
    for k in (0, 1):
        assert lines[1 + k] == (f"class {k} {k}: precision={precision[k]:.4f} recall={recall[k]:.4f} "
                                f"support={(y == k).sum()}")
    printed = np.array([[int(v) for v in line.split()[1:]] for line in lines[-2:]])
    np.testing.assert_array_equal(printed, confusion_matrix(y, pred, labels=[0, 1]))


def test_evaluate_report_writes_pngs(grouped_ckpt, mmi, tmp_path):
    result = invoke("evaluate", "--ckpt", grouped_ckpt, "--x", mmi / "X.npy", "--y", mmi / "y.npy",
                    "--report", tmp_path / "report", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert f"class 0 {MMI_CLASSES[0]}:" in result.output
    report = tmp_path / "report"
    assert result.output.splitlines()[-1] == f"wrote {report / 'confusion.png'} and {report / 'training.png'}"
    for name in ("confusion.png", "training.png"):
        path = tmp_path / "report" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(path)  # (H, W, 4)
        assert image.ndim == 3 and min(image.shape[:2]) > 100 and image.std() > 0.01


def test_evaluate_bad_input(grouped_ckpt, mmi, tmp_path):
    np.save(tmp_path / "y.npy", np.zeros(3, dtype=np.int64))
    assert "labels" in one_line_error(invoke("evaluate", "--ckpt", grouped_ckpt, "--x", mmi / "X.npy", "--y",
                                             tmp_path / "y.npy", "--report", tmp_path / "report"))
    assert not (tmp_path / "report").exists()
    # windows prepared with another channel order than the model was trained on
    other = tmp_path / "reordered"
    shutil.copytree(mmi, other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "channels": meta["channels"][::-1]}))
    assert "trained on" in one_line_error(invoke("evaluate", "--ckpt", grouped_ckpt, "--x", other / "X.npy",
                                                 "--y", other / "y.npy"))
    # windows of a three-class recipe: named by their classes, not by the labels or sizes they give
    three = tmp_path / "three"
    shutil.copytree(mmi, three)
    (three / "meta.json").write_text(json.dumps({**meta, "classes": ["rest", *MMI_CLASSES]}))
    np.save(three / "y.npy", np.load(mmi / "y.npy") + 1)
    assert f"class_names=('rest', '{MMI_CLASSES[0]}', '{MMI_CLASSES[1]}') but the model was trained on" in \
        one_line_error(invoke("evaluate", "--ckpt", grouped_ckpt, "--x", three / "X.npy", "--y", three / "y.npy"))


def test_evaluate_checks_a_meta_json_given_or_warns_that_none_is(grouped_ckpt, mmi, tmp_path, caplog):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("X.npy", "y.npy"):
        shutil.copy(mmi / name, bare / name)
    with caplog.at_level("WARNING", logger="eeg2arm"):
        assert invoke("evaluate", "--ckpt", grouped_ckpt, "--x", bare / "X.npy", "--y", bare / "y.npy").exit_code == 0
    assert "no meta.json beside X.npy: the data's recipe is not checked" in caplog.text
    meta = json.loads((mmi / "meta.json").read_text())
    (tmp_path / "other.json").write_text(json.dumps({**meta, "channels": meta["channels"][::-1]}))
    assert "trained on" in one_line_error(invoke("evaluate", "--ckpt", grouped_ckpt, "--x", bare / "X.npy", "--y",
                                                 bare / "y.npy", "--meta", tmp_path / "other.json"))
