"""Subjects: `prepare --group-by subject` on real recordings, and `evaluate`'s accuracy per group."""
from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np
from click.testing import CliRunner

from eeg2arm.checkpoint import load_model_from_checkpoint
from eeg2arm.cli import cli
from eeg2arm.infer import predict_logits


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_group_by_subject_uses_the_folder_of_eegmmidb_files(raw_dir, tmp_path):
    files = sorted(raw_dir.glob("eegmmidb/S00[12]/*.edf"))
    events = ["--event", "T1", "--event", "T2", "--tmax", "4"]
    for group_by in ("subject", "recording"):
        result = invoke("prepare", *files, "--out", tmp_path / group_by, *events, "--group-by", group_by)
        assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "subject" / "meta.json").read_text())
    groups = np.load(tmp_path / "subject" / "groups.npy")
    assert meta["group_by"] == "subject" and meta["group_names"] == ["S001", "S002"]
    assert [f["subject"] for f in meta["source_files"]] == ["S001"] * 3 + ["S002"] * 3
    subject_of_trial = [Path(src).parent.name for src, _ in meta["trial_sources"]]
    np.testing.assert_array_equal(groups, [meta["group_names"].index(s) for s in subject_of_trial])
    assert np.bincount(groups).tolist() == [45, 45]
    by_file = np.load(tmp_path / "recording" / "groups.npy")  # the default: one group per file
    assert json.loads((tmp_path / "recording" / "meta.json").read_text())["group_names"] == [str(f) for f in files]
    assert len(np.unique(by_file)) == 6 and np.array_equal(groups, by_file // 3)


def test_group_by_subject_prefers_the_recording_s_subject_info(raw_dir, tmp_path):
    """A FIF that names its subject (his_id) is grouped by it; one that does not, by its folder."""
    eyes = sorted(raw_dir.glob("eyes_open_closed/*_raw.fif"))
    named, unnamed = tmp_path / "lab" / "ec_raw.fif", tmp_path / "session2" / "eo_raw.fif"
    for src, dst, his_id in ((eyes[0], named, "P07"), (eyes[1], unnamed, None)):
        raw = mne.io.read_raw(src, verbose="error")
        if his_id:
            raw.info["subject_info"] = {"his_id": his_id}
        dst.parent.mkdir()
        raw.save(dst, verbose="error")
    result = invoke("prepare", named, unnamed, "--out", tmp_path / "out", "--group-by", "subject")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["group_names"] == ["P07", "session2"]
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "groups.npy"), [0] * 50 + [1] * 50)


def test_evaluate_prints_accuracy_per_group(trained, raw_dir, tmp_path):
    """groups.npy beside X (one group per recording here) and prepare's names for them."""
    eyes = sorted(raw_dir.glob("eyes_open_closed/*_raw.fif"))
    data = tmp_path / "eyes"
    result = invoke("prepare", *eyes, "--out", data, "--event", "eyes_open", "--event", "eyes_closed")
    assert result.exit_code == 0, result.output
    result = invoke("evaluate", "--ckpt", trained[0], "--x", data / "X.npy", "--y", data / "y.npy", "--device", "cpu")
    assert result.exit_code == 0, result.output
    model, _ = load_model_from_checkpoint(trained[0], "cpu")
    X, y, groups = (np.load(data / f"{k}.npy") for k in ("X", "y", "groups"))
    correct = predict_logits(model, X).argmax(-1) == y
    lines = [line for line in result.output.splitlines() if line.startswith("group")]
    accuracies = [correct[groups == g].mean() for g in (0, 1)]
    assert lines == [f"group {eyes[g]}: n=50 accuracy={accuracies[g]:.4f}"
                     for g in (0, 1)] + [f"groups: 2, accuracy mean={np.mean(accuracies):.4f} "
                                         f"sd={np.std(accuracies):.4f}"]
    np.save(tmp_path / "bad_groups.npy", np.zeros(7, dtype=np.int64))
    result = invoke("evaluate", "--ckpt", trained[0], "--x", data / "X.npy", "--y", data / "y.npy", "--groups",
                    tmp_path / "bad_groups.npy")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "one group id per sample" in result.output
