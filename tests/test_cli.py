"""`eeg2arm train` / `eeg2arm infer` through click's CliRunner on the real eyes-open/closed band power."""
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from eeg2arm.checkpoint import CHECKPOINT_KEYS, CHECKPOINT_VERSION, load_model_from_checkpoint
from eeg2arm.cli import cli
from eeg2arm.config import EEGConfig
from eeg2arm.infer import predict_logits

from conftest import REPO, SHARED_DATA

GUIDE = REPO.parent / "shared" / "seed" / "eeg2arm-guide.md"
TRAIN_ARGS = ["--classes", "2", "--elec", "32", "--bands", "4", "--frame-embed", "64", "--workers", "0",
              "--device", "cpu"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def guide_table(script: str) -> list[list[str]]:
    """Rows of the guide's CLI table for train.py or infer.py: [flag, required, type, default, meaning]."""
    text = GUIDE.read_text()
    section = text.split(f"### `{script}`")[1].split("\n---\n")[0].split("###")[0]
    rows = [[c.strip().strip("`*") for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| `--")]
    assert rows, f"no flag table found for {script} in {GUIDE}"
    return rows


@pytest.mark.parametrize("command,script", [("train", "train.py"), ("infer", "infer.py")])
def test_help_lists_every_guide_flag_with_its_default(command, script):
    help_text = " ".join(run(command, "--help").output.split())  # unwrap click's line wrapping
    for flag, required, _type, default, _meaning in guide_table(script):
        assert flag in help_text, f"{flag} missing from `eeg2arm {command} --help`"
        option_help = help_text.split(flag, 1)[1].split(" --", 1)[0]
        if required == "Yes":
            assert "[required" in option_help, flag  # "[required unless --onnx]" for infer --ckpt
        elif default not in ("–", "False"):
            shown = re.search(r"\[default: ([^\]]+)\]", option_help)
            assert shown and float(shown.group(1)) == float(default), f"{flag}: guide default {default} not shown"


def test_train_writes_the_guides_checkpoint_and_prints_each_epoch(tmp_path, bandpower_dir):
    save = tmp_path / "ckpt.pt"
    result = run("train", "--x", bandpower_dir / "X.npy", "--y", bandpower_dir / "y.npy", "--save", save,
                 "--epochs", "2", *TRAIN_ARGS)
    assert result.exit_code == 0, result.output
    epoch_lines = [l for l in result.stdout.splitlines() if l.startswith("epoch ")]
    assert len(epoch_lines) == 2
    assert re.fullmatch(r"epoch 2/2 train_loss=\d+\.\d{4} val_loss=\d+\.\d{4} val_acc=[01]\.\d{4} lr=\S+",
                        epoch_lines[1])
    assert re.search(r"^best epoch [12]: val_loss=", result.stdout, re.M)

    ckpt = torch.load(save, weights_only=True)
    assert set(ckpt) == set(CHECKPOINT_KEYS)
    assert ckpt["version"] == CHECKPOINT_VERSION == "eeg_model_v1.5"
    assert tuple(ckpt["example_input_shape"]) == (1, 32, 4, 15)
    assert ckpt["epoch"] == ckpt["metrics"]["best_epoch"] in (1, 2)
    config = EEGConfig.from_dict(ckpt["config"])
    assert config.hyperparameters() == EEGConfig(n_classes=2, n_electrodes=32, n_bands=4, frame_embed=64).hyperparameters()
    data_meta = json.loads((bandpower_dir / "meta.json").read_text())  # picked up beside X.npy
    assert list(config.channel_names) == data_meta["channels"] and config.sfreq == data_meta["sfreq"]
    m = ckpt["metrics"]
    assert m["n_train"] == 80 and m["n_val"] == 20 and len(m["val_indices"]) == 20
    assert 0.0 <= m["val_acc"] <= 1.0 and m["val_loss"] > 0
    assert [h["epoch"] for h in m["history"]] == [1, 2]
    assert m["val_loss"] == min(h["val_loss"] for h in m["history"])


def test_checkpoint_reloads_to_identical_logits(trained, bandpower):
    path, _ = trained
    X = bandpower[0][:16]
    a, _ = load_model_from_checkpoint(path)
    b, meta = load_model_from_checkpoint(path)
    assert np.array_equal(predict_logits(a, X), predict_logits(b, X))
    fresh = type(a)(meta["config"]).materialize(meta["example_input_shape"]).eval()
    assert not np.allclose(predict_logits(fresh, X), predict_logits(a, X)), "weights must come from the file"


def test_infer_prints_the_guides_lines(trained, bandpower_dir, bandpower):
    path, _ = trained
    result = run("infer", "--ckpt", path, "--x", bandpower_dir / "X.npy", "--device", "cpu")
    assert result.exit_code == 0, result.output
    lines = [l for l in result.output.splitlines() if l.startswith("[sample")]
    assert len(lines) == 100
    model, _ = load_model_from_checkpoint(path)
    logits = predict_logits(model, bandpower[0])
    probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
    for i in (0, 57, 99):
        pred = int(probs[i].argmax())
        assert lines[i] == f"[sample {i}] pred={pred} conf={probs[i, pred]:.4f}"


def test_infer_single_window_and_logits(trained, bandpower, tmp_path):
    path, _ = trained
    single = tmp_path / "one.npy"
    np.save(single, bandpower[0][3])  # (C, F, T)
    result = run("infer", "--ckpt", path, "--x", single, "--no-softmax", "--device", "cpu")
    assert result.exit_code == 0, result.output
    model, _ = load_model_from_checkpoint(path)
    logits = predict_logits(model, bandpower[0][3:4])[0]
    expected = f"[sample 0] pred={int(logits.argmax())} logits=[{logits[0]:.4f}, {logits[1]:.4f}]"
    assert result.output.strip().splitlines()[-1] == expected


def test_infer_warns_when_normalize_conflicts_with_training(trained, bandpower_dir):
    path, _ = trained
    result = run("infer", "--ckpt", path, "--x", bandpower_dir / "X.npy", "--normalize", "--device", "cpu")
    assert result.exit_code == 0
    assert "--normalize ignored: this model was trained without normalization" in result.output


def test_resume_continues_from_the_checkpoint(tmp_path, bandpower_dir):
    save = tmp_path / "ckpt.pt"
    data = ["--x", bandpower_dir / "X.npy", "--y", bandpower_dir / "y.npy", "--save", save]
    assert run("train", *data, "--epochs", "1", *TRAIN_ARGS).exit_code == 0
    result = run("train", *data, "--epochs", "3", "--resume", save, *TRAIN_ARGS)
    assert result.exit_code == 0, result.output
    assert "epoch 1/3" not in result.output and "epoch 2/3" in result.output and "epoch 3/3" in result.output
    history = torch.load(save, weights_only=True)["metrics"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_the_checkpoint_keeps_every_epochs_history_and_is_written_even_without_improvement(tmp_path,
                                                                                           bandpower_dir):
    """Resumed with a learning rate too small to move a weight: no epoch beats the checkpoint's best, yet --save is
    written (the best weights), and its history holds every epoch for the training curves."""
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    data = ["--x", bandpower_dir / "X.npy", "--y", bandpower_dir / "y.npy"]
    assert run("train", *data, "--save", first, "--epochs", "2", *TRAIN_ARGS).exit_code == 0
    result = run("train", *data, "--save", second, "--epochs", "4", "--resume", first, "--lr", "1e-30", *TRAIN_ARGS)
    assert result.exit_code == 0, result.output
    before, after = torch.load(first, weights_only=True), torch.load(second, weights_only=True)
    assert after["epoch"] == before["epoch"] == after["metrics"]["best_epoch"]  # still the best epoch's weights
    assert all(torch.equal(after["model_state"][k], v) for k, v in before["model_state"].items())
    assert [h["epoch"] for h in after["metrics"]["history"]] == [1, 2, 3, 4]
    assert result.output.strip().splitlines()[-1].endswith(f"saved to {second}")


def test_resume_with_other_flags_names_the_ones_that_differ(tmp_path, bandpower_dir):
    save = tmp_path / "ckpt.pt"
    data = ["--x", bandpower_dir / "X.npy", "--y", bandpower_dir / "y.npy", "--save", save]
    assert run("train", *data, "--epochs", "1", *TRAIN_ARGS).exit_code == 0
    result = run("train", *data, "--epochs", "2", "--resume", save, *TRAIN_ARGS, "--frame-embed", "32")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: --resume checkpoint was trained with frame_embed=64 (now 32): use the flags it was trained with"]


@pytest.mark.parametrize("flags,message", [
    (["--elec", "31"], "Data shapes (C=32, F=4) do not match config (C=31, F=4): pass --elec 32 --bands 4"),
    (["--drop", "1.0"], "dropout"),
])
def test_flag_errors_are_not_blamed_on_the_meta_json_beside_x(tmp_path, bandpower_dir, flags, message):
    assert (bandpower_dir / "meta.json").is_file()  # the shared set carries one, as prepare's output does
    save = tmp_path / "ckpt.pt"
    result = run("train", "--x", bandpower_dir / "X.npy", "--y", bandpower_dir / "y.npy", "--save", save,
                 "--epochs", "1", *TRAIN_ARGS, *flags)
    assert_clean_error(result, message, save)
    assert "meta.json" not in result.output


def test_evaluate_on_windows_of_another_montage_gives_the_shape_error(trained, bandpower_dir):
    result = run("evaluate", "--ckpt", trained[0], "--x", bandpower_dir / "eegmmidb_imagery" / "X.npy",
                 "--y", bandpower_dir / "eegmmidb_imagery" / "y.npy", "--device", "cpu")
    assert_clean_error(result, "Data shapes (C=64, F=4) do not match config (C=32, F=4): give windows of 32 "
                               "electrodes and 4 bands", None)


@pytest.mark.parametrize("flag,context", [("8", 8), ("0", None)])
def test_context_window_is_a_train_flag(tmp_path, bandpower_dir, flag, context):
    save = tmp_path / "ckpt.pt"
    result = run("train", "--x", bandpower_dir / "X.npy", "--y", bandpower_dir / "y.npy", "--save", save,
                 "--epochs", "1", "--context", flag, *TRAIN_ARGS)
    assert result.exit_code == 0, result.output
    config = load_model_from_checkpoint(save)[1]["config"]
    assert config.context == context and config.streamable == (context is not None)


def test_compile_falls_back_with_a_warning(tmp_path, bandpower_dir, monkeypatch, caplog):
    def broken_compile(model, *a, **k):
        raise RuntimeError("no compiler on this machine")
    monkeypatch.setattr(torch, "compile", broken_compile)
    save = tmp_path / "ckpt.pt"
    result = run("train", "--x", bandpower_dir / "X.npy", "--y", bandpower_dir / "y.npy", "--save", save,
                 "--epochs", "1", "--compile", *TRAIN_ARGS)
    assert result.exit_code == 0, result.output
    assert "torch.compile failed (no compiler on this machine); training without it" in caplog.text
    assert save.is_file()


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "eeg2arm", "--help"], capture_output=True, text=True, check=True)
    assert "train" in out.stdout and "infer" in out.stdout


def test_ctrl_c_during_training_ends_with_one_line_and_whole_files(tmp_path, bandpower_dir):
    """Ctrl-C used to end in click's bare "Aborted!", exit 1 (review U13): now one line, exit 130 as in a shell,
    and the checkpoint written at the last epoch is whole."""
    save = tmp_path / "ckpt.pt"
    proc = subprocess.Popen([sys.executable, "-m", "eeg2arm", "train", "--x", bandpower_dir / "X.npy", "--y",
                             bandpower_dir / "y.npy", "--save", save, "--epochs", "1000", *TRAIN_ARGS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # each epoch's line
            if line.startswith("epoch 2/"):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "Error: interrupted (Ctrl-C): every file written is whole, none is half-written"
    assert "Aborted!" not in err + out and [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    assert load_model_from_checkpoint(save)[1]["epoch"] >= 1


# --- bad input: one line, exit 2, nothing written ----------------------------------------------------------------

def save_npy(dir_: Path, name: str, arr) -> Path:
    p = dir_ / name
    np.save(p, arr)
    return p


def assert_clean_error(result, message: str, save: Path | None = None):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [l for l in result.output.splitlines() if l.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    if save is not None:
        assert not save.exists() and not list(save.parent.glob(f".{save.name}*")), "partial output left behind"


X_OK = np.load(REPO / "eeg2arm" / "sample" / "X.npy")
Y_OK = np.load(REPO / "eeg2arm" / "sample" / "y.npy")
BAD_TRAIN_DATA = {
    "C/F mismatch": (X_OK[:, :16], Y_OK,
                     "Data shapes (C=16, F=4) do not match config (C=32, F=4): pass --elec 16 --bands 4"),
    "labels out of range": (X_OK, Y_OK + 1, "labels must be in [0, 1] for --classes 2"),
    "labels not integers": (X_OK, Y_OK + 0.5, "integer class indices"),
    "NaN in X": (np.where(np.arange(100)[:, None, None, None] == 7, np.nan, X_OK), Y_OK, "NaN/Inf values"),
    "Inf in X": (np.where(np.arange(100)[:, None, None, None] == 7, np.inf, X_OK), Y_OK, "(first in sample 7)"),
    "length mismatch": (X_OK, Y_OK[:90], "X has 100 samples but y has 90 labels"),
    "wrong ndim": (X_OK[..., 0], Y_OK, "has shape (100, 32, 4); expected (N, C, F, T)"),
    "T too short": (X_OK[..., :1], Y_OK, "T=1 frames but the model needs at least T=2"),
    "too few samples": (X_OK[:1], Y_OK[:1], "too few samples (1)"),
}


@pytest.mark.parametrize("case", BAD_TRAIN_DATA)
def test_train_rejects_bad_data(case, tmp_path):
    X, y, message = BAD_TRAIN_DATA[case]
    save = tmp_path / "ckpt.pt"
    result = run("train", "--x", save_npy(tmp_path, "X.npy", X), "--y", save_npy(tmp_path, "y.npy", y),
                 "--save", save, "--epochs", "1", *TRAIN_ARGS)
    assert_clean_error(result, message, save)


@pytest.mark.parametrize("flags,message", [
    (["--val-split", "0"], "--val-split 0 trains on every trial with nothing to validate on: give --select last"),
    (["--val-split", "1.5"], "--val-split must be in [0, 1) (0: no validation), got 1.5"),
    (["--val-split", "-0.1"], "--val-split must be in [0, 1) (0: no validation), got -0.1"),
    (["--device", "cuda"], "CUDA is not available"),
    (["--lr", "-1"], "--lr must be > 0 and --wd >= 0"),
    (["--wd", "-0.1"], "--lr must be > 0 and --wd >= 0"),
    (["--frame-embed", "30"], "frame_embed (30) must be divisible by n_heads (4)"),
])
def test_train_rejects_bad_flags(flags, message, tmp_path):
    if "cuda" in flags and torch.cuda.is_available():
        pytest.skip("CUDA is present")
    save = tmp_path / "ckpt.pt"
    args = [a for a in TRAIN_ARGS if a not in ("--device", "cpu")]
    result = run("train", "--x", save_npy(tmp_path, "X.npy", X_OK), "--y", save_npy(tmp_path, "y.npy", Y_OK),
                 "--save", save, "--epochs", "1", *args, *flags)
    assert_clean_error(result, message, save)


def test_train_rejects_missing_and_non_npy_files(tmp_path):
    y = save_npy(tmp_path, "y.npy", Y_OK)
    save = tmp_path / "ckpt.pt"
    assert_clean_error(run("train", "--x", tmp_path / "nope.npy", "--y", y, "--save", save, *TRAIN_ARGS),
                       "X file not found", save)
    csv = tmp_path / "X.csv"
    csv.write_text("1,2,3\n")
    assert_clean_error(run("train", "--x", csv, "--y", y, "--save", save, *TRAIN_ARGS), "must be a .npy file", save)
    fake = tmp_path / "fake.npy"
    fake.write_bytes(b"this is not numpy")
    assert_clean_error(run("train", "--x", fake, "--y", y, "--save", save, *TRAIN_ARGS),
                       "is not a readable .npy array", save)
    assert_clean_error(run("train", "--x", save_npy(tmp_path, "X.npy", X_OK), "--y", y, "--save",
                           tmp_path / "missing" / "ckpt.pt", *TRAIN_ARGS), "output folder does not exist")
    if Path("/proc").is_dir():  # a folder that takes no new file, even for root: refused before training starts
        result = run("train", "--x", save_npy(tmp_path, "X.npy", X_OK), "--y", y, "--save", "/proc/ckpt.pt",
                     *TRAIN_ARGS)
        assert result.exit_code == 2 and "epoch" not in result.output
        assert result.output.strip().splitlines()[-1].startswith("Error: output folder /proc is not writable")
        kdd = SHARED_DATA / "raw" / "KDD_Example" / "KDD_Example_TRAIN-epo.fif"
        assert_clean_error(run("prepare", kdd, "--out", "/proc/prepared"), "/proc/prepared cannot be written")


class Evil:
    """Unpickling this runs open(marker, 'w'): what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def bad_checkpoints(tmp_path: Path, good: Path) -> dict[str, tuple[Path, str]]:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 100)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    evil = tmp_path / "evil.pt"
    torch.save({"model_state": Evil(tmp_path / "pwned")}, evil)
    edited = {}
    for key, value in (("example_input_shape", (1, 2)), ("config", None), ("model_state", [1]), ("metrics", None)):
        edited[key] = tmp_path / f"bad_{key}.pt"
        torch.save({**torch.load(good, weights_only=True), key: value}, edited[key])
    return {
        **{f"bad {key}": (path, f"has eeg2arm's keys but invalid {key}") for key, path in edited.items()},
        "missing": (tmp_path / "nope.pt", "checkpoint not found"),
        "corrupt": (corrupt, "corrupt or truncated"),
        "truncated": (truncated, "corrupt or truncated"),
        "foreign": (foreign, "is not an eeg2arm checkpoint"),
        "malicious pickle": (evil, "was refused"),
    }


@pytest.mark.parametrize("case", ["missing", "corrupt", "truncated", "foreign", "malicious pickle",
                                  "bad example_input_shape", "bad config", "bad model_state", "bad metrics"])
def test_infer_rejects_bad_checkpoints(case, trained, tmp_path, bandpower_dir):
    ckpt, message = bad_checkpoints(tmp_path, trained[0])[case]
    result = run("infer", "--ckpt", ckpt, "--x", bandpower_dir / "X.npy", "--device", "cpu")
    assert_clean_error(result, message)
    assert not (tmp_path / "pwned").exists(), "the malicious pickle was executed"


def test_infer_rejects_bad_windows(trained, tmp_path):
    path, _ = trained
    cases = {
        "Data shapes (C=31, F=4) do not match config (C=32, F=4)": X_OK[:, :31],
        "NaN/Inf": np.full((2, 32, 4, 15), np.nan, dtype=np.float32),
        "expected (N, C, F, T) or a single window": X_OK[0, 0],
        "needs at least T=2": X_OK[..., :1],
    }
    for message, X in cases.items():
        assert_clean_error(run("infer", "--ckpt", path, "--x", save_npy(tmp_path, "X.npy", X), "--device", "cpu"),
                           message)
