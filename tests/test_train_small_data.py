"""Training for small EEG sets: augmentation, label smoothing, frame loss, early stopping, cosine schedule, and
fine-tuning from a checkpoint (--init), on the real eyes-open/closed band power; mechanics only, no accuracy."""
import math

import numpy as np
import pytest
import torch

from eeg2arm.augment import Augment, augment_batch, random_crop
from eeg2arm.checkpoint import load_model_from_checkpoint
from eeg2arm.config import EEGConfig
from eeg2arm.train import TrainOptions, train

from test_cli import TRAIN_ARGS, X_OK, Y_OK, assert_clean_error, run, save_npy

SMALL = ["--classes", "2", "--elec", "32", "--bands", "4", "--frame-embed", "32", "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return ["--x", save_npy(folder, "X.npy", X_OK), "--y", save_npy(folder, "y.npy", Y_OK)]


@pytest.fixture(scope="module")
def base(tmp_path_factory, data):
    """A checkpoint trained for one epoch, to fine-tune from."""
    save = tmp_path_factory.mktemp("base") / "base.pt"
    result = run("train", *data, "--save", save, "--epochs", "1", *SMALL)
    assert result.exit_code == 0, result.output
    return save


def test_every_small_data_option_trains_and_is_recorded(tmp_path, data):
    save = tmp_path / "ckpt.pt"
    result = run("train", *data, "--save", save, "--epochs", "2", *SMALL, "--crop", "0.5", "--noise", "0.2",
                 "--channel-drop", "0.1", "--mixup", "0.4", "--label-smoothing", "0.1", "--frame-loss", "3",
                 "--schedule", "cosine", "--kernel-time", "5", "--patience", "5")
    assert result.exit_code == 0, result.output
    model, meta = load_model_from_checkpoint(save)
    options = meta["metrics"]["train_options"]
    assert options["augment"] == {"crop": 0.5, "noise": 0.2, "channel_drop": 0.1, "mixup": 0.4}
    assert (options["label_smoothing"], options["frame_loss"], options["schedule"], options["patience"]) == \
        (0.1, 3, "cosine", 5)
    assert meta["config"].kernel_time == 5 and model.stem[0].conv.kernel_size == (1, 3, 5)
    assert meta["metrics"]["init"] is None
    lrs = [h["lr"] for h in meta["metrics"]["history"]]
    assert lrs[0] == pytest.approx(3e-4) and lrs[1] == pytest.approx(3e-4 * (1 + math.cos(math.pi / 2)) / 2)


def test_defaults_are_the_guides_training(tmp_path, data):
    save = tmp_path / "ckpt.pt"
    assert run("train", *data, "--save", save, "--epochs", "1", *SMALL).exit_code == 0
    options = load_model_from_checkpoint(save)[1]["metrics"]["train_options"]
    assert options["augment"] == {"crop": 0.0, "noise": 0.0, "channel_drop": 0.0, "mixup": 0.0}
    assert (options["label_smoothing"], options["frame_loss"], options["schedule"], options["patience"]) == \
        (0.0, 1, "plateau", 0)
    assert (options["lr"], options["batch"], options["epochs"]) == (3e-4, 64, 1)


def test_patience_stops_when_val_loss_stops_improving(tmp_path, data):
    save = tmp_path / "ckpt.pt"  # lr 1e-30: the weights never move, so val loss never beats epoch 1
    result = run("train", *data, "--save", save, "--epochs", "10", "--lr", "1e-30", "--patience", "2", *SMALL)
    assert result.exit_code == 0, result.output
    assert "early stop: no better val_loss for 2 epochs" in result.output
    assert [h["epoch"] for h in load_model_from_checkpoint(save)[1]["metrics"]["history"]] == [1, 2, 3]


def test_select_last_keeps_the_last_epoch_whatever_the_validation_says(tmp_path, data):
    """lr 1e-30: the weights never move, so by loss epoch 1 would stay the best; `last` keeps epoch 3."""
    save = tmp_path / "ckpt.pt"
    result = run("train", *data, "--save", save, "--epochs", "3", "--lr", "1e-30", "--select", "last", *SMALL)
    assert result.exit_code == 0, result.output
    assert load_model_from_checkpoint(save)[1]["epoch"] == 3 and "best epoch 3:" in result.output


def test_network_size_flags_shape_the_network_and_travel_with_it(tmp_path, data):
    """--layers, --spatial-filters and --depth-multiplier: the config, the weights and the exported graph agree."""
    from export.metadata import read_onnx_metadata
    from export.onnx_export import export_onnx

    save = tmp_path / "ckpt.pt"
    result = run("train", *data, "--save", save, "--epochs", "1", *SMALL, "--layers", "1", "--spatial-filters", "8",
                 "--depth-multiplier", "2")
    assert result.exit_code == 0, result.output
    model, meta = load_model_from_checkpoint(save)
    config = meta["config"]
    assert (config.n_layers, config.spatial_filters, config.depth_multiplier) == (1, 8, 2)
    assert len(model.blocks) == 1 and model.mix[0].out_channels == 8 and model.stem[0].conv.out_channels == 32 * 2
    export_onnx(save, tmp_path / "m.onnx", echo=lambda s: None)
    assert read_onnx_metadata(tmp_path / "m.onnx")[0] == config


@pytest.mark.parametrize("flag", ["--layers", "--spatial-filters", "--depth-multiplier", "--ensemble"])
def test_network_size_flags_refuse_zero(flag, tmp_path, data):
    result = run("train", *data, "--save", tmp_path / "ckpt.pt", *SMALL, flag, "0")
    assert result.exit_code == 2 and "0 is not in the range x>=1" in result.output


def test_val_split_0_trains_on_every_trial_and_keeps_the_last_epoch(tmp_path, data):
    """No validation: n_train is every trial, the history has no validation and the report still draws it."""
    save = tmp_path / "ckpt.pt"
    result = run("train", *data, "--save", save, "--epochs", "2", "--val-split", "0", "--select", "last",
                 "--schedule", "plateau", *SMALL)
    assert result.exit_code == 0, result.output
    assert "best epoch 2: no validation (--val-split 0) saved to" in result.output
    meta = load_model_from_checkpoint(save)[1]
    assert (meta["epoch"], meta["metrics"]["n_train"], meta["metrics"]["n_val"]) == (2, len(Y_OK), 0)
    assert [(h["val_loss"], h["val_acc"]) for h in meta["metrics"]["history"]] == [(None, None)] * 2
    report = tmp_path / "report"
    result = run("evaluate", "--ckpt", save, *data, "--report", report)
    assert result.exit_code == 0, result.output
    assert (report / "training.png").stat().st_size > 0


def test_val_split_0_sees_every_trial(tmp_path, data):
    """The input standardization is fitted on the training trials: with --val-split 0 on all of them."""
    saves = {split: tmp_path / f"{split}.pt" for split in ("0", "0.2")}
    for split, save in saves.items():
        assert run("train", *data, "--save", save, "--epochs", "1", "--val-split", split, "--select", "last",
                   *SMALL).exit_code == 0
    every = torch.from_numpy(X_OK.astype(np.float32)).mean(dim=(0, 3))  # (C, F)
    means = {split: load_model_from_checkpoint(save)[0].input_mean.reshape(every.shape)
             for split, save in saves.items()}
    assert torch.allclose(means["0"], every, atol=1e-4) and not torch.allclose(means["0.2"], every, atol=1e-4)


def test_val_split_0_refuses_groups_and_a_resume_with_validation(tmp_path, data):
    """Nothing to split by group; a run resumed must validate as it did (its best epoch was picked so)."""
    save = tmp_path / "ckpt.pt"
    groups = save_npy(tmp_path, "groups.npy", np.arange(len(Y_OK)) % 4)
    assert_clean_error(run("train", *data, "--save", save, "--epochs", "1", "--val-split", "0", "--select", "last",
                           "--groups", groups, *SMALL), "--groups splits the validation by group", save)
    assert run("train", *data, "--save", save, "--epochs", "1", "--val-split", "0", "--select", "last",
               *SMALL).exit_code == 0
    before = save.read_bytes()
    result = run("train", *data, "--save", save, "--epochs", "2", *SMALL, "--resume", save)
    assert result.exit_code == 2 and "--resume checkpoint was trained with --val-split 0.0 (now 0.2)" in result.output
    assert save.read_bytes() == before


@pytest.mark.parametrize("flags,message", [
    (["--val-split", "0", "--select", "last", "--val-last"], "--val-split 0 trains on every trial"),
    (["--val-split", "0", "--select", "last", "--patience", "2"], "--val-split 0 trains on every trial"),
    (["--crop", "1.5"], "--crop must be between 0 (off) and 1"),
    (["--noise", "-1"], "--noise must be >= 0"),
    (["--noise", "nan"], "--noise must be >= 0"),
    (["--channel-drop", "1"], "--channel-drop must be in [0, 1)"),
    (["--mixup", "-0.2"], "--mixup must be >= 0"),
    (["--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
    (["--frame-loss", "0"], "--frame-loss must be >= 1 and --patience >= 0"),
    (["--patience", "-1"], "--frame-loss must be >= 1 and --patience >= 0"),
    (["--frame-loss", "100"], "--frame-loss 100 is more than the 7 pooled frames of a window"),
    (["--readout", "16"], "--readout 16 reads more frames than the 15 of a window: use at most 15"),
    (["--kernel-time", "0"], "config.kernel_time must be a positive integer"),
    (["--readout-first", "1", "--epochs", "2"], "--readout-first trains the linear readout alone first"),
    (["--readout", "8", "--readout-first", "1"], "--readout-first must be in [0, --epochs) so that the"),
    (["--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
    (["--seed", "4294967295", "--ensemble", "2"], "the members' seeds run past 2**32 - 1"),
    (["--freeze", "stem"], "--freeze and --restandardize fine-tune a model: they need --init CKPT"),
    (["--restandardize"], "--freeze and --restandardize fine-tune a model: they need --init CKPT"),
])
def test_bad_small_data_values_are_one_line_errors(flags, message, tmp_path, data):
    save = tmp_path / "ckpt.pt"
    assert_clean_error(run("train", *data, "--save", save, "--epochs", "1", *SMALL, *flags), message, save)


def test_schedule_is_a_choice(tmp_path, data):
    result = run("train", *data, "--save", tmp_path / "ckpt.pt", *SMALL, "--schedule", "linear")
    assert result.exit_code == 2 and "'linear' is not one of 'plateau', 'cosine'" in result.output


def test_init_fine_tunes_with_frozen_parts_and_a_fresh_run(tmp_path, data, base):
    save = tmp_path / "ft.pt"
    result = run("train", *data, "--save", save, "--epochs", "2", "--lr", "1e-2", *SMALL, "--drop", "0.2",
                 "--init", base, "--freeze", "stem,mix")
    assert result.exit_code == 0, result.output
    before, after = torch.load(base, weights_only=True), torch.load(save, weights_only=True)
    frozen = [k for k in before["model_state"] if k.startswith(("stem.", "mix."))]
    assert frozen and all(torch.equal(before["model_state"][k], after["model_state"][k]) for k in frozen)
    assert not torch.equal(before["model_state"]["head.weight"], after["model_state"]["head.weight"])
    metrics = after["metrics"]
    assert metrics["init"] == str(base) and metrics["freeze"] == ["stem", "mix"]
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]  # a new run: epochs counted from 1
    assert after["config"]["dropout"] == 0.2  # dropout may differ: it shapes no weight
    # the checkpoint's input standardization is kept unless --restandardize
    assert torch.equal(before["model_state"]["input_mean"], after["model_state"]["input_mean"])


def test_restandardize_refits_the_input_statistics_to_the_new_data(tmp_path, base):
    shifted = tmp_path / "X.npy"
    np.save(shifted, X_OK + 3.0)  # another subject's level: the same windows, 3 log units up
    save = tmp_path / "ft.pt"
    result = run("train", "--x", shifted, "--y", save_npy(tmp_path, "y.npy", Y_OK), "--save", save,
                 "--epochs", "1", *SMALL, "--init", base, "--restandardize", "--freeze", "stem,mix,embed,blocks")
    assert result.exit_code == 0, result.output
    before, after = torch.load(base, weights_only=True), torch.load(save, weights_only=True)
    assert torch.allclose(after["model_state"]["input_mean"], before["model_state"]["input_mean"] + 3.0, atol=1e-3)
    assert torch.allclose(after["model_state"]["input_std"], before["model_state"]["input_std"], atol=1e-3)
    assert after["metrics"]["restandardize"] is True
    frozen = [k for k in before["model_state"] if k.startswith(("stem.", "mix.", "embed.", "ln_embed.", "blocks."))]
    assert all(torch.equal(before["model_state"][k], after["model_state"][k]) for k in frozen)


@pytest.mark.parametrize("flags,message", [
    (["--frame-embed", "64"], "--init checkpoint was trained with frame_embed=32 (now 64)"),
    (["--kernel-time", "5"], "--init checkpoint was trained with kernel_time=3 (now 5)"),
    (["--linear-stem"], "--init checkpoint was trained with linear_stem=False (now True)"),
    (["--layers", "1"], "--init checkpoint was trained with n_layers=2 (now 1)"),
    (["--readout", "3"], "--init checkpoint was trained with readout_frames=0 (now 3)"),
    (["--spatial-filters", "8"], "--init checkpoint was trained with spatial_filters=32 (now 8)"),
    (["--freeze", "stem,legs"], "--freeze legs: name parts of stem, mix, embed, blocks, head"),
    (["--freeze", "head,stem,mix,embed,blocks"], "leaves nothing to train: leave out at least one part"),
])
def test_init_refuses_another_network(flags, message, tmp_path, data, base):
    save = tmp_path / "ft.pt"  # a flag given twice: click keeps the last
    assert_clean_error(run("train", *data, "--save", save, "--epochs", "1", *SMALL, "--init", base, *flags),
                       message, save)


def test_init_refuses_data_of_other_electrodes(tmp_path, base):
    save = tmp_path / "ft.pt"
    X = save_npy(tmp_path, "X.npy", X_OK[:, :16])
    result = run("train", "--x", X, "--y", save_npy(tmp_path, "y.npy", Y_OK), "--save", save, "--epochs", "1",
                 *SMALL, "--elec", "16", "--init", base)
    assert_clean_error(result, "--init checkpoint was trained with n_electrodes=32 (now 16)", save)


def test_init_and_resume_exclude_each_other(tmp_path, data, base):
    save = tmp_path / "ft.pt"
    assert_clean_error(run("train", *data, "--save", save, "--epochs", "2", *SMALL, "--init", base,
                           "--resume", base), "give --resume (go on with a run) or --init", save)


def test_init_of_a_missing_checkpoint_is_one_line(tmp_path, data):
    save = tmp_path / "ft.pt"
    assert_clean_error(run("train", *data, "--save", save, *SMALL, "--init", tmp_path / "nope.pt"),
                       "checkpoint not found", save)


def test_random_crop_takes_contiguous_windows_of_the_input():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 2 * 10, dtype=torch.float32).reshape(2, 3, 2, 10)  # (B, C, F, T)
    for _ in range(20):
        crop = random_crop(x, 4)
        L = crop.shape[-1]
        assert 4 <= L <= 10 and crop.shape[:3] == x.shape[:3]
        for b in range(2):
            start = int(crop[b, 0, 0, 0] - x[b, 0, 0, 0])
            assert torch.equal(crop[b], x[b, ..., start:start + L])


def test_augment_batch_mixes_targets_and_blanks_electrodes_at_the_training_mean():
    torch.manual_seed(0)
    x, y = torch.randn(8, 4, 2, 6), torch.tensor([0, 1] * 4)
    mean, std = torch.full((4, 2, 1), 5.0), torch.ones(4, 2, 1)
    same, target = augment_batch(x, y, Augment(), 2, mean, std, 2)
    assert torch.equal(same, x) and torch.equal(target, torch.nn.functional.one_hot(y, 2).float())
    dropped, _ = augment_batch(x, y, Augment(channel_drop=0.999), 2, mean, std, 2)
    assert (dropped == 5.0).float().mean() > 0.9
    mixed, target = augment_batch(x, y, Augment(mixup=0.4), 2, mean, std, 2)
    assert torch.allclose(target.sum(1), torch.ones(8)) and mixed.shape == x.shape
    noisy, _ = augment_batch(x, y, Augment(noise=0.5), 2, mean, std, 2)
    assert 0.3 < (noisy - x).std() < 0.7


def test_guide_train_args_still_work_unchanged(tmp_path, data):
    result = run("train", *data, "--save", tmp_path / "ckpt.pt", "--epochs", "1", *TRAIN_ARGS)
    assert result.exit_code == 0, result.output


def test_readout_first_trains_the_readout_alone_then_the_whole_model(tmp_path):
    """--readout 8 --readout-first 2 --epochs 3: after epochs 1 and 2 the network is as initialised, its head zero
    (it adds nothing), and only the readout has moved; epoch 3 trains the network too."""
    save, seen = tmp_path / "ckpt.pt", []

    def echo(line: str) -> None:  # each epoch's line comes before its checkpoint: the file holds the epoch before
        if line.startswith("epoch ") and save.exists():
            seen.append(torch.load(save, weights_only=True)["model_state"])

    config = EEGConfig(n_classes=2, n_electrodes=32, n_bands=4, frame_embed=32, readout_frames=8)
    train(X_OK, Y_OK, config, save, TrainOptions(epochs=3, lr=1e-2, readout_first=2, select="last", workers=0,
                                                 device="cpu"), echo=echo)
    after1, after2 = seen
    after3 = torch.load(save, weights_only=True)["model_state"]
    network = [k for k in after1 if not k.startswith(("readout.", "input_"))]
    assert network and all(torch.equal(after1[k], after2[k]) for k in network)
    assert not after2["head.weight"].any() and not after2["head.bias"].any()
    assert not torch.equal(after1["readout.weight"], after2["readout.weight"])
    assert after3["head.weight"].any() and not torch.equal(after2["stem.0.conv.weight"], after3["stem.0.conv.weight"])


def test_readout_first_is_for_a_new_model(tmp_path, data, base):
    save = tmp_path / "ft.pt"
    result = run("train", *data, "--save", save, "--epochs", "2", *SMALL, "--readout", "8", "--readout-first", "1",
                 "--init", base)
    assert_clean_error(result, "--readout-first starts the network's head at zero", save)


def test_patience_counts_from_the_end_of_the_readouts_epochs(tmp_path, data):
    """lr 1e-30: nothing improves after epoch 1; --patience 1 stops one epoch after the readout's 3, not at 2."""
    save = tmp_path / "ckpt.pt"
    result = run("train", *data, "--save", save, "--epochs", "8", "--lr", "1e-30", *SMALL, "--readout", "8",
                 "--readout-first", "3", "--patience", "1")
    assert result.exit_code == 0, result.output
    assert [h["epoch"] for h in load_model_from_checkpoint(save)[1]["metrics"]["history"]] == [1, 2, 3, 4]


def test_an_ensemble_trains_anew_and_is_no_start_for_another_run(tmp_path, data, base):
    save = tmp_path / "ens.pt"
    result = run("train", *data, "--save", save, "--epochs", "2", *SMALL, "--ensemble", "2", "--init", base)
    assert_clean_error(result, "--ensemble trains new members: it cannot go on from or fine-tune a checkpoint "
                               "(--init)", save)
    result = run("train", *data, "--save", save, "--epochs", "1", *SMALL, "--ensemble", "2")
    assert result.exit_code == 0 and "saved to /" not in result.output.replace(str(save), "")  # no temp paths
    meta = load_model_from_checkpoint(save)[1]
    assert meta["config"].ensemble == 2 and len(meta["metrics"]["members"]) == 2
    for flag in ("--init", "--resume"):
        again = tmp_path / "again.pt"
        result = run("train", *data, "--save", again, "--epochs", "2", *SMALL, flag, save)
        assert_clean_error(result, f"{flag} {save} is an ensemble of 2 networks; {flag} takes one network", again)
    result = run("evaluate", "--ckpt", save, *data, "--report", tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == \
        ["confusion.png", "training-member1.png", "training-member2.png"]


def test_a_checkpoint_of_other_channels_is_named_in_a_short_line():
    """--init of a 64-channel model on data with one channel renamed, or fewer channels: the error names the first
    differing entry or cuts the lists, instead of printing every name (and every CSP filter) twice."""
    import dataclasses

    from eeg2arm.errors import UserInputError
    from eeg2arm.train import check_same_model, difference

    names = tuple(f"EEG{i:03d}" for i in range(64))
    theirs = EEGConfig(n_classes=2, n_electrodes=64, n_bands=1, channel_names=names)
    renamed = dataclasses.replace(theirs, channel_names=names[:10] + ("Cz",) + names[11:])
    fewer = dataclasses.replace(theirs, channel_names=names[:40], n_electrodes=40)
    with pytest.raises(UserInputError, match=r"channel_names\[10\]='EEG010' \(now 'Cz'\)") as renamed_error:
        check_same_model(theirs, renamed, "--init")
    with pytest.raises(UserInputError, match=r"n_electrodes=64 \(now 40\), channel_names=\['EEG000', .*\.\.\. "
                                             r"\(64 in all\) \(now \['EEG000', .*\.\.\. \(40 in all\)\)") as fewer_error:
        check_same_model(theirs, fewer, "--init")
    assert len(str(renamed_error.value)) < 200 and len(str(fewer_error.value)) < 400
    filters = np.zeros((2, 6, 21)).tolist()  # (bands, components, channels): one weight differs, deep inside
    moved = np.zeros((2, 6, 21))
    moved[1, 4, 17] = 0.5
    assert difference("csp_filters", filters, moved.tolist()) == "csp_filters[1][4][17]=0.0 (now 0.5)"
