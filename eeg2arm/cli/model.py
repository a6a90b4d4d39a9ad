"""The model commands: train, calibrate, infer, export, parity, evaluate."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..config import CALIBRATION_WEIGHT
from ..errors import UserInputError
from .common import ATOL, DEVICE, FILE, cli, log, user_errors

if TYPE_CHECKING:
    import numpy as np


@cli.command()
@click.option("--x", "x_path", type=FILE, required=True, help="Path to X.npy with shape (N,C,F,T)")
@click.option("--y", "y_path", type=FILE, required=True, help="Path to y.npy with shape (N,) (int labels)")
@click.option("--save", type=FILE, required=True, help="Output checkpoint path, e.g., ckpt.pt")
@click.option("--classes", type=int, required=True, help="Number of classes K (labels in [0, K-1])")
@click.option("--elec", type=int, required=True, help="Electrodes C expected by the model")
@click.option("--bands", type=int, required=True, help="Bands/features F per electrode")
@click.option("--cnn-time-pool", type=int, default=2, show_default=True, help="Time pooling factor in the first DW block")
@click.option("--frame-embed", type=int, default=256, show_default=True, help="Transformer embedding size per frame")
@click.option("--drop", type=float, default=0.1, show_default=True, help="Dropout probability throughout the model")
@click.option("--batch", type=int, default=64, show_default=True, help="Training batch size")
@click.option("--epochs", type=int, default=30, show_default=True, help="Number of epochs")
@click.option("--lr", type=float, default=3e-4, show_default=True, help="Learning rate (AdamW)")
@click.option("--wd", type=float, default=1e-4, show_default=True, help="Weight decay (AdamW)")
@click.option("--val-split", type=float, default=0.2, show_default=True,
              help="Fraction of data held out for validation (0: every trial trains and the last epoch is kept, "
                   "select 'last'; the plateau schedule then follows the training loss)")
@click.option("--seed", type=int, default=1337, show_default=True, help="RNG seed for reproducibility")
@click.option("--workers", type=int, default=2, show_default=True, help="DataLoader workers (increase if I/O bound)")
@click.option("--normalize", is_flag=True, default=False, show_default=True,
              help="Apply per-sample z-score over (F,T) per electrode (recorded in the checkpoint)")
@click.option("--compile", "compile_", is_flag=True, default=False, show_default=True,
              help="Try torch.compile (falls back with a warning)")
@click.option("--resume", type=FILE, default=None, help="Continue training from this checkpoint")
@click.option("--context", type=click.IntRange(min=0), default=64, show_default=True,
              help="Attention window W in pooled frames, which bounds streaming memory (0: the whole history; "
                   "such a model cannot stream)")
@DEVICE
@click.option("--groups", "groups_path", type=FILE, default=None,
              help="groups.npy (N,): split train/val by group (recording or subject), so that no group is on both "
                   "sides  [default: the groups.npy beside --x, if any]")
@click.option("--no-groups", is_flag=True, default=False,
              help="Split train/val by window even when a groups.npy lies beside --x (the guide's stratified split)")
@click.option("--meta", "meta_path", type=FILE, default=None,
              help="meta.json of the data (class, channel, band names; default: the one beside X.npy, if any)")
@click.option("--kernel-time", type=int, default=3, show_default=True,
              help="Frames per causal time kernel of the depthwise convs (longer: slower trends, e.g. slow potentials)")
@click.option("--layers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Transformer layers over the frames (fewer: a smaller network for few trials)")
@click.option("--spatial-filters", type=click.IntRange(min=1), default=32, show_default=True,
              help="Output maps of the network's 1x1x1 electrode mix (not prepare's learned --spatial csp filters)")
@click.option("--depth-multiplier", type=click.IntRange(min=1), default=4, show_default=True,
              help="Feature maps per electrode in the depthwise convs")
@click.option("--readout", type=click.IntRange(min=0), default=0, show_default=True,
              help="A linear readout of the last N input frames beside the network, added to every decision's logits "
                   "(0: none; e.g. the window's frames)")
@click.option("--ensemble", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train N networks apart (seeds --seed, --seed + 1, ...) and keep them as one model that averages "
                   "their logits: one checkpoint, one ONNX graph; N times the training and the inference")
@click.option("--readout-first", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --readout: train the readout alone for the first N epochs (the network's head starts at "
                   "zero, so it adds nothing), then the whole model; the epochs kept may be the readout's alone")
@click.option("--fit-readout", is_flag=True,
              help="With --readout: fit the readout first by logistic regression on the training windows' standardized "
                   "frames (its L2 strength chosen on 5 inner folds in file order) and keep it fixed; that fit is "
                   "epoch 0, a candidate like every epoch, and the network (its head from zero) trains on top for "
                   "--epochs (0: the readout alone)")
@click.option("--input-scale", type=click.Choice(["feature", "shared", "column"]), default="feature",
              show_default=True,
              help="The input standardization: each feature divided by its own training sd, or all by one shared sd "
                   "(features already on one scale, e.g. --spatial csp-tangent's vectors, keep their relative sizes); "
                   "column (only with --fit-readout): as feature, and the regression also standardizes each of its "
                   "inputs (a feature at a frame position), folded into the readout's weights")
@click.option("--linear-stem/--no-linear-stem", default=False, show_default=True,
              help="No GELU in the per-electrode depthwise convs: the first nonlinearity follows the electrode mix, "
                   "so a contrast between electrodes (e.g. a lateralized potential) reaches it whole")
@click.option("--schedule", type=click.Choice(["plateau", "cosine"]), default="plateau", show_default=True,
              help="Learning rate: halve after 3 epochs without a better val loss, or a cosine decay over --epochs "
                   "(steadier when the validation split is small)")
@click.option("--select", type=click.Choice(["loss", "accuracy", "last"]), default="loss", show_default=True,
              help="The epoch kept: lowest val loss, highest val accuracy (ties: lower val loss), or the last (when "
                   "the validation is a few trials, e.g. fine-tuning on a new subject's calibration)")
@click.option("--val-last/--no-val-last", default=False,
              help="Validate on the last --val-split of the trials in file order (a recording's latest), not a random "
                   "split: shows whether the model holds up on later trials (drift); --no-val-last undoes a recipe's")
@click.option("--crop", type=float, default=0.0, show_default=True,
              help="Small data: train on random windows of at least this fraction of T frames (0: off)")
@click.option("--noise", type=float, default=0.0, show_default=True,
              help="Small data: Gaussian noise on the inputs, sd in units of each feature's training sd (0: off)")
@click.option("--channel-drop", type=float, default=0.0, show_default=True,
              help="Small data: probability of blanking an electrode of a training window (0: off)")
@click.option("--mixup", type=float, default=0.0, show_default=True,
              help="Small data: mix pairs of windows and labels, Beta(a, a) weights (0: off; 0.2-0.4 typical)")
@click.option("--label-smoothing", type=float, default=0.0, show_default=True,
              help="Small data: cross-entropy against smoothed labels (0: off)")
@click.option("--frame-loss", type=int, default=1, show_default=True,
              help="Train the decisions of the last N pooled frames, not only the last one (1: the guide's)")
@click.option("--patience", type=int, default=0, show_default=True,
              help="Stop after N epochs without a better validation score (val loss, or val accuracy with "
                   "--select accuracy; 0: run all --epochs)")
@click.option("--init", "init_path", type=FILE, default=None,
              help="Fine-tune: start from this checkpoint's weights (same network, electrodes, classes), fresh "
                   "optimizer, e.g. a cross-subject model on a new subject's first trials")
@click.option("--freeze", default="", help="With --init: comma-separated parts kept fixed, from stem,mix,embed,"
                                           "blocks,head (input side first; head includes the --readout; at least one "
                                           "must train)")
@click.option("--restandardize", is_flag=True, default=False,
              help="With --init: refit the input standardization to this data (the new subject's own signal)")
@user_errors
def train(x_path, y_path, save, groups_path, no_groups, meta_path, val_last, **_) -> None:
    """Train EEGModel on X.npy / y.npy and save the best checkpoint by validation loss (or --select accuracy)."""
    import dataclasses

    from ..data import check_windows, load_data_meta, load_npy, meta_beside
    from ..train import settings_from_flags, train as run_training

    config, opts, extra = settings_from_flags(click.get_current_context().params)  # bad values before the data
    X, y = load_npy(x_path, "X"), load_npy(y_path, "y")
    X = check_windows(X, config, single_ok=False, training=True)  # the guide's shape message comes before meta.json's
    fix = "fix the flags" if meta_path else "fix the flags, or pass the data's own meta.json with --meta"
    meta_path = meta_path or meta_beside(x_path)
    if meta_path:  # class, channel and band names of the data, recorded in the checkpoint
        data_fields = load_data_meta(meta_path)
        try:
            config = dataclasses.replace(config, **data_fields)
        except UserInputError as e:
            raise UserInputError(f"{meta_path} does not fit the flags ({e}): {fix}") from None
    groups = training_groups(x_path, groups_path, no_groups, val_last or opts.val_split == 0)
    run_training(X, y, config, save, opts, groups=groups, echo=click.echo, **extra)


@cli.command()
@click.option("--ckpt", type=FILE, required=True,
              help="A checkpoint of `train --fit-readout --epochs 0` on two classes, e.g. a cross-subject model")
@click.option("--x", "x_path", type=FILE, required=True,
              help="X.npy (N,C,F,T) of the new subject's labelled trials, prepared --like the checkpoint's data")
@click.option("--y", "y_path", type=FILE, required=True, help="y.npy (N,) of those trials")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Calibrate on the first N trials only (in the order prepare wrote them)  [default: all]")
@click.option("--save", type=FILE, required=True,
              help="Output checkpoint path (the calibrated model; not --ckpt, which stays the prior)")
@click.option("--weight", type=float, default=CALIBRATION_WEIGHT, show_default=True,
              help="How many training trials each new trial counts as (more: the new subject weighs more)")
@click.option("--meta", "meta_path", type=FILE, default=None,
              help="meta.json of the data, checked against the checkpoint's recipe (default: the one beside X.npy)")
@user_errors
def calibrate(ckpt, x_path, y_path, trials, save, weight, meta_path) -> None:
    """Update a checkpoint's fitted readout with a new subject's labelled trials: the regression refitted as if they
    had been among its training windows (its fit kept as the prior); network and graph unchanged."""
    from ..calibrate import calibrate as run_calibration, first_trials
    from ..data import checked_meta, load_data_meta, load_npy

    meta_path = checked_meta(x_path, meta_path)
    data_fields = load_data_meta(meta_path) if meta_path else None
    X, y = first_trials(load_npy(x_path, "X"), load_npy(y_path, "y"), trials)
    run_calibration(ckpt, X, y, save, weight, data_fields, click.echo)


def training_groups(x_path: Path, groups_path: Path | None, no_groups: bool, ungrouped: bool) -> "np.ndarray | None":
    """The groups the validation split keeps apart: --groups, else the groups.npy beside --x when it holds two or
    more (as evaluate takes it), unless --no-groups or `ungrouped` (--val-last validates on the last trials
    instead, --val-split 0 on none)."""
    import numpy as np

    from ..data import load_npy

    if groups_path is not None:
        if no_groups:
            raise UserInputError("give --groups (split by group) or --no-groups (split by window), not both")
        return load_npy(groups_path, "groups")
    beside = Path(x_path).parent / "groups.npy"
    if no_groups or ungrouped or not beside.is_file():
        return None
    groups = load_npy(beside, "groups")
    if groups.ndim != 1 or len(np.unique(groups)) < 2:  # one recording or subject: nothing to keep apart
        return None
    log.info("validation split by group (recording or subject): %s (--no-groups splits by window)", beside)
    return groups


@cli.command()
@click.option("--ckpt", type=FILE, default=None,
              help="Path to checkpoint produced by training  [required unless --onnx]")
@click.option("--onnx", "onnx_path", type=FILE, default=None,
              help="Path to a model made by `eeg2arm export` (instead of --ckpt), run in ONNX Runtime")
@click.option("--x", "x_path", type=FILE, required=True, help="Path to X.npy (B,C,F,T) or single (C,F,T)")
@click.option("--no-softmax", is_flag=True, default=False, show_default=True,
              help="Return logits instead of probabilities")
@click.option("--normalize", is_flag=True, default=False, show_default=True,
              help="Apply the same per-sample normalization used in training (the checkpoint records it)")
@DEVICE
@user_errors
def infer(ckpt, onnx_path, x_path, no_softmax, normalize, device) -> None:
    """Print the predicted class and confidence of each window, from a checkpoint or an ONNX export."""
    from ..data import check_windows, load_npy
    from ..infer import format_predictions

    if (ckpt is None) == (onnx_path is None):
        raise UserInputError("give exactly one of --ckpt (PyTorch checkpoint) or --onnx (exported model)")
    if onnx_path is not None:
        from export.session import OnnxPredictor

        predictor = OnnxPredictor(onnx_path, device)
        config, predict = predictor.config, predictor.predict_logits
    else:
        from ..checkpoint import load_model_from_checkpoint
        from ..device import resolve_device
        from ..infer import predict_logits

        model, meta = load_model_from_checkpoint(ckpt, resolve_device(device))
        config, predict = meta["config"], lambda X: predict_logits(model, X)
    if normalize and not config.normalize:
        log.warning("--normalize ignored: this model was trained without normalization")
    X = check_windows(load_npy(x_path, "X"), config)
    for line in format_predictions(predict(X), not no_softmax, config.class_names):
        click.echo(line)



@cli.command()
@click.option("--ckpt", type=FILE, required=True, help="Path to checkpoint produced by training")
@click.option("--out", type=FILE, required=True, help="Output ONNX path, e.g., model.onnx")
@click.option("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
@ATOL
@click.option("--check/--no-check", default=True, show_default=True,
              help="Measure parity on real windows before writing --out")
@click.option("--x", "x_path", type=FILE, default=None,
              help="Real windows X.npy for the parity check (default: the embedded eyes-open/closed sample)")
@click.option("--stream/--no-stream", default=True, show_default=True,
              help="Also write the streaming step graph beside --out (model.step.onnx)")
@click.option("--bentoml", "to_bentoml", is_flag=True, default=False,
              help="Also save the ONNX file(s) into the BentoML model store ($BENTOML_HOME) as model eeg2arm")
@user_errors
def export(ckpt, out, opset, atol, check, x_path, stream, to_bentoml) -> None:
    """Export a checkpoint to ONNX with dynamic batch and time axes, its config in the metadata."""
    from export.onnx_export import export_onnx

    result = export_onnx(ckpt, out, opset=opset, atol=atol, check=check, x_path=x_path, stream=stream,
                         echo=click.echo)
    parity = "parity not checked" if result.parity is None else f"parity within --atol {atol:g}"
    click.echo(f"wrote {result.path} (opset {result.opset}, inputs x (batch, C, F, time); "
               f"outputs logits, probs, frame_logits; {parity})")
    if result.step is not None:
        click.echo(f"wrote {result.step} (streaming step graph: frames (batch, C, F, pool) + state -> probs + state)")
    if to_bentoml:
        from export.metadata import read_onnx_metadata
        from serving.model_source import save_to_store

        config, meta = read_onnx_metadata(result.path)
        click.echo(f"saved to the BentoML model store as {save_to_store(result.path, config, meta['version'])}")



@cli.command()
@click.option("--ckpt", type=FILE, required=True, help="Path to checkpoint produced by training")
@click.option("--onnx", "onnx_path", type=FILE, required=True, help="Path to the model made by `eeg2arm export`")
@click.option("--x", "x_path", type=FILE, default=None,
              help="Real windows X.npy (default: the embedded eyes-open/closed sample)")
@ATOL
@user_errors
def parity(ckpt, onnx_path, x_path, atol) -> None:
    """Print PyTorch vs ONNX Runtime max abs errors on CPU for batch sizes 1, 7, 64 and several T."""
    from export.parity import run_parity

    run_parity(ckpt, onnx_path, x_path, atol, echo=click.echo)
    click.echo(f"parity within --atol {atol:g}")



@cli.command()
@click.option("--ckpt", type=FILE, required=True, help="Path to checkpoint produced by training")
@click.option("--x", "x_path", type=FILE, required=True, help="Path to X.npy (N,C,F,T)")
@click.option("--y", "y_path", type=FILE, required=True, help="Path to y.npy (N,) true labels")
@click.option("--report", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write confusion.png and training.png into (an ensemble: training-member1.png, ...)")
@click.option("--groups", "groups_path", type=FILE, default=None,
              help="groups.npy (N,): also print the accuracy per group, e.g. per subject [default: the groups.npy "
                   "beside X.npy, if any]")
@click.option("--meta", "meta_path", type=FILE, default=None,
              help="meta.json of the data, checked against the checkpoint's recipe (default: the one beside X.npy)")
@DEVICE
@user_errors
def evaluate(ckpt, x_path, y_path, report, groups_path, meta_path, device) -> None:
    """Print accuracy, balanced accuracy, Cohen's kappa, per-class precision/recall, per-group accuracy (subjects or
    recordings, from groups.npy) and the confusion matrix."""
    from ..data import checked_meta, group_names, load_data_meta, load_npy
    from ..evaluate import evaluate as run_evaluate, format_metrics

    meta_path = checked_meta(x_path, meta_path)
    data_meta = load_data_meta(meta_path) if meta_path else None
    beside = Path(x_path).parent / "groups.npy"
    groups_path = groups_path or (beside if beside.is_file() else None)
    groups = load_npy(groups_path, "groups") if groups_path else None
    names = (group_names(meta_path) if meta_path and groups_path
             and Path(groups_path).resolve().parent == meta_path.resolve().parent else None)  # only its own groups
    metrics = run_evaluate(ckpt, load_npy(x_path, "X"), load_npy(y_path, "y"), report, device, data_meta, groups,
                           names)
    for line in format_metrics(metrics):
        click.echo(line)
    if report is not None:
        click.echo(f"wrote {report / 'confusion.png'} and {report / 'training.png'}")
