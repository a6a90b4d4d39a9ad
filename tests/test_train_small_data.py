"""Training for small EEG sets: augmentation, label smoothing, frame loss, early stopping, cosine schedule, and
fine-tuning from a checkpoint (--init), on the real eyes-open/closed band power; mechanics only, no accuracy."""
import math

import numpy as np
import pytest
import torch

from eeg2arm.augment import Augment, augment_batch, random_crop
from eeg2arm.checkpoint import load_model_from_checkpoint
from eeg2arm.config import EEGConfig
from eeg2arm.data import split_indices
from eeg2arm.errors import UserInputError
from eeg2arm.model import EEGModel
from eeg2arm.readout import fit_readout
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
    assert result.exit_code == 2 and "--resume checkpoint was trained with val_split=0.0 (now 0.2)" in result.output
    assert save.read_bytes() == before


def test_input_scale_shared_divides_every_feature_by_one_sd_and_is_recorded(tmp_path, data):
    """--input-scale shared: the training windows' features are centred each by its own mean and all divided by
    the root of their mean variance (the features' relative sizes kept); the default divides each by its own sd."""
    runs = {}
    for scale in ("feature", "shared"):
        save = tmp_path / f"{scale}.pt"
        result = run("train", *data, "--save", save, "--epochs", "1", *SMALL, "--input-scale", scale,
                     "--val-split", "0", "--select", "last")
        assert result.exit_code == 0, result.output
        model, meta = load_model_from_checkpoint(save)
        assert meta["metrics"]["train_options"]["input_scale"] == scale
        runs[scale] = model
    own_sd = X_OK.astype(np.float64).std(axis=(0, 3))  # (C, F): each feature's sd over trials and frames
    feature, shared = runs["feature"].input_std[..., 0].double(), runs["shared"].input_std[..., 0].double()
    assert torch.allclose(feature, torch.from_numpy(own_sd), rtol=1e-4)
    assert torch.allclose(shared, torch.full_like(shared, np.sqrt(np.mean(own_sd ** 2))), rtol=1e-4)
    assert torch.equal(runs["feature"].input_mean, runs["shared"].input_mean)


@pytest.mark.parametrize("flags,message", [
    (["--input-scale", "none"], "'none' is not one of 'feature', 'shared', 'column'"),
    (["--input-scale", "column"], "--input-scale column scales the columns of the fitted readout: give --fit-readout"),
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
    (["--fit-readout"], "--fit-readout fits the linear readout first: give --readout N too"),
    (["--readout", "8", "--fit-readout", "--readout-first", "1", "--epochs", "2"],
     "--fit-readout fits the readout before the first epoch: give it or --readout-first, not both"),
    (["--readout", "8", "--epochs", "0"], "--epochs must be >= 1 (--epochs 0 only with --fit-readout)"),
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


@pytest.mark.filterwarnings("ignore::FutureWarning")  # scikit-learn 1.9 announces coming defaults on every fit
@pytest.mark.parametrize("n,pool,classes,scale", [(8, 1, 2, "feature"), (15, 1, 2, "shared"), (4, 1, 3, "feature"),
                                                  (8, 2, 2, "shared"), (8, 1, 2, "column"), (4, 1, 3, "column"),
                                                  (15, 2, 2, "column")])
def test_fit_readout_makes_the_model_a_logistic_regression_of_its_standardized_frames(n, pool, classes, scale):
    """Before the network trains, the model's probabilities are those of scikit-learn's logistic regression (C on 5
    contiguous inner folds) of the n standardized frames that the last decision reads (T = 15: with 2 frames
    pooled, the 14th is the last), standardized here by hand (3 classes: one logit per class); with the column
    scale, scikit-learn's StandardScaler of every column first, as accuracy.py's "its features + LR" (n = 15 with 2
    frames pooled: the oldest column is padding, all zeros)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = Y_OK if classes == 2 else np.arange(len(Y_OK)) % 3
    config = EEGConfig(n_classes=classes, n_electrodes=32, n_bands=4, frame_embed=32, readout_frames=n,
                       cnn_time_pool=pool)
    model = EEGModel(config).materialize(X_OK.shape).eval()
    model.set_input_stats(torch.from_numpy(X_OK), shared=scale == "shared")
    fit_readout(model, X_OK, y, columns=scale == "column")
    X = X_OK.astype(np.float64)
    mean, sd = X.mean(axis=(0, 3), keepdims=True), X.std(axis=(0, 3), keepdims=True)  # (1, C, F, 1)
    if scale == "shared":
        sd = np.sqrt(np.mean(sd ** 2))
    end = 15 // pool * pool
    framed = np.pad((X - mean) / sd, [(0, 0)] * 3 + [(n, 0)])[..., end:end + n]  # n frames up to `end`, zeros before
    read = framed.reshape(len(X), -1)
    regression = LogisticRegressionCV(Cs=np.logspace(-4, 2, 7), cv=KFold(5), scoring="accuracy", max_iter=5000)
    if scale == "column":
        regression = make_pipeline(StandardScaler(), regression)
    expected = regression.fit(read, y).predict_proba(read)
    with torch.no_grad():
        got = torch.softmax(model(torch.from_numpy(X_OK)).double(), -1).numpy()
    assert np.abs(got - expected).max() < 1e-4
    assert np.abs(expected - 1 / classes).max() > 0.1  # a real fit, not the flat one of a zero readout


def test_fit_readout_is_epoch_0_and_stays_as_fitted_while_the_network_trains(tmp_path):
    """--fit-readout: epoch 0 is the regression fitted on the training split (not the validation trials), a
    candidate like every epoch; the readout in every later checkpoint is that fit, and the network's head moves."""
    save, seen = tmp_path / "ckpt.pt", []

    def echo(line: str) -> None:
        if line.startswith("epoch ") and save.exists():
            seen.append(torch.load(save, weights_only=True))

    config = EEGConfig(n_classes=2, n_electrodes=32, n_bands=4, frame_embed=32, readout_frames=8)
    opts = TrainOptions(epochs=3, lr=1e-2, fit_readout=True, select="last", workers=0, device="cpu")
    train(X_OK, Y_OK, config, save, opts, echo=echo)
    fitted = EEGModel(config).materialize(X_OK.shape)
    train_idx, _ = split_indices(Y_OK, opts.val_split, opts.seed)
    fitted.set_input_stats(torch.from_numpy(X_OK[train_idx]))
    fit_readout(fitted, X_OK[train_idx], Y_OK[train_idx])
    final = torch.load(save, weights_only=True)
    assert seen[0]["epoch"] == 0 and not seen[0]["model_state"]["head.weight"].any()
    assert [h["epoch"] for h in final["metrics"]["history"]] == [0, 1, 2, 3]
    for state in (*(c["model_state"] for c in seen), final["model_state"]):
        assert torch.equal(state["readout.weight"], fitted.readout.weight)
        assert torch.equal(state["readout.bias"], fitted.readout.bias)
    assert fitted.readout.weight.abs().max() > 0 and final["model_state"]["head.weight"].any()


def test_fit_readout_with_0_epochs_keeps_the_regression_alone(tmp_path, data):
    save = tmp_path / "ckpt.pt"
    result = run("train", *data, "--save", save, "--epochs", "0", *SMALL, "--readout", "8", "--fit-readout",
                 "--val-split", "0", "--select", "last")
    assert result.exit_code == 0, result.output
    assert "epoch 0 (the fitted readout)" in result.output
    model, meta = load_model_from_checkpoint(save)
    assert meta["epoch"] == 0 and meta["metrics"]["train_options"]["fit_readout"] is True
    assert not model.head.weight.any() and model.readout.weight.any()


@pytest.mark.parametrize("labels,classes", [(np.zeros_like(Y_OK), 2), (Y_OK, 3)])
def test_fit_readout_needs_trials_of_every_class(labels, classes, tmp_path):
    config = EEGConfig(n_classes=classes, n_electrodes=32, n_bands=4, frame_embed=32, readout_frames=8)
    with pytest.raises(UserInputError, match=f"--fit-readout needs 10 or more training trials of each of the "
                                             f"{classes} classes"):
        train(X_OK, labels, config, tmp_path / "ckpt.pt",
              TrainOptions(epochs=1, fit_readout=True, workers=0, device="cpu"))
    assert not (tmp_path / "ckpt.pt").exists()


def test_fit_readout_folds_stay_contiguous_unless_a_fold_would_lose_a_class():
    """The regression's inner folds keep a recording's trials together (contiguous); trials sorted by class, where
    a contiguous fold's training side would hold one class, are split by class instead."""
    from eeg2arm.readout import inner_folds

    interleaved = np.tile([0, 1], 20)
    assert [list(test) for _, test in inner_folds(interleaved).split(interleaved)][0] == list(range(8))
    by_class = np.repeat([0, 1], [30, 10])
    for train_side, _ in inner_folds(by_class).split(by_class, by_class):
        assert set(by_class[train_side]) == {0, 1}


def test_resuming_a_fit_readout_run_needs_its_flags(tmp_path, data):
    save = tmp_path / "ckpt.pt"
    assert run("train", *data, "--save", save, "--epochs", "1", *SMALL, "--readout", "8", "--fit-readout",
               "--input-scale", "shared").exit_code == 0
    before = save.read_bytes()
    result = run("train", *data, "--save", save, "--epochs", "2", *SMALL, "--readout", "8", "--input-scale",
                 "shared", "--resume", save)
    assert result.exit_code == 2 and "was trained with fit_readout=True (now False)" in result.output
    result = run("train", *data, "--save", save, "--epochs", "2", *SMALL, "--readout", "8", "--fit-readout",
                 "--resume", save)
    assert result.exit_code == 2 and "was trained with input_scale='shared' (now 'feature')" in result.output
    assert save.read_bytes() == before


def test_restandardize_keeps_the_input_scale_the_checkpoint_was_trained_with(tmp_path, data):
    base = tmp_path / "shared.pt"
    assert run("train", *data, "--save", base, "--epochs", "1", *SMALL, "--input-scale", "shared").exit_code == 0
    save = tmp_path / "ft.pt"
    result = run("train", *data, "--save", save, "--epochs", "1", *SMALL, "--init", base, "--restandardize")
    assert_clean_error(result, "--restandardize refits the input scale the checkpoint's readout was fitted on: give "
                               "--input-scale shared", save)
    assert run("train", *data, "--save", save, "--epochs", "1", *SMALL, "--init", base, "--restandardize",
               "--input-scale", "shared").exit_code == 0


def test_a_column_scaled_readout_is_restandardized_per_feature(tmp_path, data):
    """--input-scale column standardizes the input per feature (its column scaler lives in the readout's weights), so
    its checkpoint fine-tunes with --restandardize as a per-feature one does, and refuses the shared scale."""
    base = tmp_path / "column.pt"
    assert run("train", *data, "--save", base, *SMALL, "--readout", "8", "--fit-readout", "--input-scale", "column",
               "--epochs", "0", "--val-split", "0", "--select", "last").exit_code == 0
    save = tmp_path / "ft.pt"
    result = run("train", *data, "--save", save, "--epochs", "1", *SMALL, "--readout", "8", "--init", base,
                 "--restandardize", "--input-scale", "shared")
    assert_clean_error(result, "--restandardize refits the input scale the checkpoint's readout was fitted on: give "
                               "--input-scale feature", save)
    new_subject = (X_OK * 3).astype(np.float32)  # another scale: the refit must show
    new_data = ["--x", save_npy(tmp_path, "X.npy", new_subject), "--y", save_npy(tmp_path, "y.npy", Y_OK)]
    result = run("train", *new_data, "--save", save, "--epochs", "1", *SMALL, "--readout", "8", "--init", base,
                 "--restandardize", "--freeze", "stem,mix,embed,blocks", "--val-split", "0", "--select", "last")
    assert result.exit_code == 0, result.output
    tuned, _ = load_model_from_checkpoint(save)
    own_sd = torch.from_numpy(new_subject.astype(np.float64).std(axis=(0, 3)))  # (C, F): each feature's own
    assert torch.allclose(tuned.input_std[..., 0].double(), own_sd, rtol=1e-4)


def test_an_ensemble_of_the_fitted_readout_alone_is_refused(tmp_path, data):
    save = tmp_path / "ckpt.pt"
    result = run("train", *data, "--save", save, "--epochs", "0", *SMALL, "--readout", "8", "--fit-readout",
                 "--ensemble", "2")
    assert_clean_error(result, "--ensemble 2 with --fit-readout --epochs 0 would keep 2 identical members", save)


@pytest.mark.parametrize("args,holds_out", [([], True), (["--val-split", "0"], False), (["--val-split=0"], False),
                                            (["--val-split", "0", "--val-split", "0.1"], True),
                                            (["--epochs", "0", "--val-split=0.3"], True)])
def test_validates_reads_the_val_split_as_click_does(args, holds_out):
    from eeg2arm.train import validates

    assert validates(args) is holds_out


def test_fit_readout_is_for_a_new_model(tmp_path, data, base):
    save = tmp_path / "ft.pt"
    result = run("train", *data, "--save", save, "--epochs", "1", *SMALL, "--readout", "8", "--fit-readout",
                 "--init", base)
    assert_clean_error(result, "--fit-readout starts the network's head at zero", save)


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
    from eeg2arm.errors import difference
    from eeg2arm.train import check_same_model

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
