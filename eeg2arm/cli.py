"""The `eeg2arm` command line: thin click commands over the library functions."""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import click

from .errors import UserInputError

log = logging.getLogger("eeg2arm")
FILE = click.Path(dir_okay=False, path_type=Path)


class CLIError(click.ClickException):
    """A user error: printed as one `Error: ...` line, exit code 2."""

    exit_code = 2


def user_errors(fn):
    """Turn UserInputError raised by the library into a one-line CLI error with exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserInputError as e:
            raise CLIError(str(e)) from None
    return wrapper


class EchoHandler(logging.Handler):
    """Log records as `LEVEL: message` on the current stderr (click.echo looks it up at each call)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"{record.levelname}: {record.getMessage()}", err=True)


@click.group()
@click.version_option(package_name="eeg2arm")
def cli() -> None:
    """Decode band-power EEG for a robot arm: train, infer, export, serve."""
    if not any(isinstance(h, EchoHandler) for h in log.handlers):
        log.addHandler(EchoHandler())
        log.setLevel(logging.INFO)


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
@click.option("--val-split", type=float, default=0.2, show_default=True, help="Fraction of data held out for validation")
@click.option("--seed", type=int, default=1337, show_default=True, help="RNG seed for reproducibility")
@click.option("--workers", type=int, default=2, show_default=True, help="DataLoader workers (increase if I/O bound)")
@click.option("--normalize", is_flag=True, default=False, show_default=True,
              help="Apply per-sample z-score over (F,T) per electrode (recorded in the checkpoint)")
@click.option("--compile", "compile_", is_flag=True, default=False, show_default=True,
              help="Try torch.compile (falls back with a warning)")
@click.option("--resume", type=FILE, default=None, help="Continue training from this checkpoint")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto = CUDA when present, else CPU")
@user_errors
def train(x_path, y_path, save, classes, elec, bands, cnn_time_pool, frame_embed, drop, batch, epochs, lr, wd,
          val_split, seed, workers, normalize, compile_, resume, device) -> None:
    """Train EEGModel on X.npy / y.npy and save the best checkpoint by validation loss."""
    from .config import EEGConfig
    from .data import load_npy
    from .train import TrainOptions, train as run_training

    if not 0.0 < val_split < 1.0:
        raise UserInputError(f"--val-split must be between 0 and 1 (exclusive), got {val_split}")
    config = EEGConfig(n_classes=classes, n_electrodes=elec, n_bands=bands, cnn_time_pool=cnn_time_pool,
                       frame_embed=frame_embed, dropout=drop, normalize=normalize)
    X, y = load_npy(x_path, "X"), load_npy(y_path, "y")
    opts = TrainOptions(batch=batch, epochs=epochs, lr=lr, wd=wd, val_split=val_split, seed=seed,
                        workers=workers, compile=compile_, device=device)
    run_training(X, y, config, save, opts, resume=resume)


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
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto = CUDA when present, else CPU")
@user_errors
def infer(ckpt, onnx_path, x_path, no_softmax, normalize, device) -> None:
    """Print the predicted class and confidence of each window, from a checkpoint or an ONNX export."""
    from .data import check_windows, load_npy
    from .infer import format_predictions

    if (ckpt is None) == (onnx_path is None):
        raise UserInputError("give exactly one of --ckpt (PyTorch checkpoint) or --onnx (exported model)")
    if onnx_path is not None:
        from export.session import OnnxPredictor

        predictor = OnnxPredictor(onnx_path, device)
        config, predict = predictor.config, predictor.predict_logits
    else:
        from .checkpoint import load_model_from_checkpoint
        from .device import resolve_device
        from .infer import predict_logits

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
@click.option("--atol", type=float, default=1e-4, show_default=True,
              help="Largest allowed max abs error between PyTorch and ONNX Runtime")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Measure parity on real windows before writing --out")
@click.option("--x", "x_path", type=FILE, default=None,
              help="Real windows X.npy for the parity check (default: the embedded eyes-open/closed sample)")
@user_errors
def export(ckpt, out, opset, atol, check, x_path) -> None:
    """Export a checkpoint to ONNX with dynamic batch and time axes, its config in the metadata."""
    from export.onnx_export import export_onnx

    result = export_onnx(ckpt, out, opset=opset, atol=atol, check=check, x_path=x_path, echo=click.echo)
    parity = "parity not checked" if result.parity is None else f"parity within --atol {atol:g}"
    click.echo(f"wrote {result.path} (opset {result.opset}, inputs x (batch, C, F, time); "
               f"outputs logits, probs, frame_logits; {parity})")


@cli.command()
@click.option("--ckpt", type=FILE, required=True, help="Path to checkpoint produced by training")
@click.option("--onnx", "onnx_path", type=FILE, required=True, help="Path to the model made by `eeg2arm export`")
@click.option("--x", "x_path", type=FILE, default=None,
              help="Real windows X.npy (default: the embedded eyes-open/closed sample)")
@click.option("--atol", type=float, default=1e-4, show_default=True,
              help="Largest allowed max abs error between PyTorch and ONNX Runtime")
@user_errors
def parity(ckpt, onnx_path, x_path, atol) -> None:
    """Print PyTorch vs ONNX Runtime max abs errors on CPU for batch sizes 1, 7, 64 and several T."""
    from export.parity import run_parity

    run_parity(ckpt, onnx_path, x_path, atol, echo=click.echo)
    click.echo(f"parity within --atol {atol:g}")


def main() -> None:
    cli(prog_name="eeg2arm")
