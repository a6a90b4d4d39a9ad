"""Training loop: AdamW, AMP on CUDA, grad clip 1.0, ReduceLROnPlateau on val loss, best-by-val-loss checkpoint."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from .checkpoint import load_model_from_checkpoint, save_checkpoint
from .config import EEGConfig
from .data import check_groups, check_labels, check_windows, split_indices
from .device import resolve_device
from .errors import UserInputError
from .model import EEGModel

log = logging.getLogger("eeg2arm")


@dataclass(frozen=True)
class TrainOptions:
    batch: int = 64
    epochs: int = 30
    lr: float = 3e-4
    wd: float = 1e-4
    val_split: float = 0.2
    seed: int = 1337
    workers: int = 2
    compile: bool = False
    device: str = "auto"


def maybe_compile(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """torch.compile the model, or return it unchanged with a warning when compiling fails."""
    try:
        compiled = torch.compile(model)
        compiled(example)  # compilation happens on the first call; surface its errors here
        return compiled
    except Exception as e:  # noqa: BLE001 - any compiler failure means: train without it
        log.warning("torch.compile failed (%s); training without it", str(e).strip().splitlines()[0][:200])
        return model


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def evaluate_loss(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a loader."""
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        logits = model(xb).float()
        loss_sum += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(-1) == yb).sum().item()
        n += len(yb)
    return loss_sum / n, correct / n


def train(X: np.ndarray, y: np.ndarray, config: EEGConfig, save: str | Path, opts: TrainOptions,
          groups: np.ndarray | None = None, resume: str | Path | None = None,
          echo: Callable[[str], None] = tqdm.write) -> dict[str, Any]:
    """Train EEGModel on X (N, C, F, T), y (N,), keep the best epoch by val loss at `save`; returns its metrics."""
    save = Path(save)
    if not save.parent.is_dir():
        raise UserInputError(f"--save folder does not exist: {save.parent}")
    if opts.batch < 1 or opts.epochs < 1 or opts.workers < 0:
        raise UserInputError("--batch and --epochs must be >= 1 and --workers >= 0")
    if not (opts.lr > 0 and opts.wd >= 0):  # also refuses NaN
        raise UserInputError(f"--lr must be > 0 and --wd >= 0, got --lr {opts.lr} --wd {opts.wd}")
    device = resolve_device(opts.device)
    torch.manual_seed(opts.seed)
    np.random.seed(opts.seed)

    start_epoch, best, history, best_state = 1, None, [], None
    if resume is not None:
        model, meta = load_model_from_checkpoint(resume, device)
        theirs, ours = model.config.hyperparameters(), config.hyperparameters()
        if theirs != ours:
            differ = ", ".join(f"{k}={theirs[k]!r} (now {ours[k]!r})" for k in theirs if theirs[k] != ours[k])
            raise UserInputError(f"--resume checkpoint was trained with {differ}: use the flags it was trained with")
        # Training goes on from the checkpoint's (best) weights, so the epochs after them are run again.
        start_epoch, best, best_state = meta["epoch"] + 1, meta["metrics"], state_copy(model)
        history = [h for h in meta["metrics"]["history"] if h["epoch"] <= meta["epoch"]]
        if start_epoch > opts.epochs:
            raise UserInputError(f"--resume checkpoint is already at epoch {meta['epoch']}; raise --epochs")
    X = check_windows(X, config, single_ok=False, training=True)
    y = check_labels(y, len(X), config.n_classes)
    if groups is not None:
        groups = check_groups(groups, len(X))
    train_idx, val_idx = split_indices(y, opts.val_split, opts.seed, groups)
    example_input_shape = (1, *X.shape[1:])
    if resume is None:
        model = EEGModel(config).materialize(example_input_shape).to(device)
        model.set_input_stats(torch.from_numpy(X[train_idx]))

    def loader(idx: np.ndarray, shuffle: bool) -> DataLoader:
        ds = TensorDataset(torch.from_numpy(X[idx]), torch.from_numpy(y[idx]))
        return DataLoader(ds, batch_size=opts.batch, shuffle=shuffle, num_workers=opts.workers,
                          persistent_workers=opts.workers > 0, pin_memory=device.type == "cuda")

    train_loader, val_loader = loader(train_idx, True), loader(val_idx, False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.wd)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=3)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    runner = maybe_compile(model, torch.from_numpy(X[:2]).to(device)) if opts.compile else model

    for epoch in tqdm(range(start_epoch, opts.epochs + 1), desc="training", unit="epoch", leave=False):
        t0 = time.perf_counter()
        runner.train()
        loss_sum, n = 0.0, 0
        for xb, yb in train_loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss = nn.functional.cross_entropy(runner(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.item() * len(yb)
            n += len(yb)
        val_loss, val_acc = evaluate_loss(runner, val_loader, device)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step(val_loss)
        row = {"epoch": epoch, "train_loss": loss_sum / n, "val_loss": val_loss, "val_acc": val_acc, "lr": lr,
               "seconds": time.perf_counter() - t0}
        history.append(row)
        echo(f"epoch {epoch}/{opts.epochs} train_loss={row['train_loss']:.4f} val_loss={val_loss:.4f} "
             f"val_acc={val_acc:.4f} lr={lr:.2e}")
        if best is None or val_loss < best["val_loss"]:
            best = {**row, "best_epoch": epoch, "n_train": len(train_idx), "n_val": len(val_idx),
                    "val_indices": val_idx.tolist()}
            best_state = state_copy(model)
            save_checkpoint(save, model, example_input_shape, epoch, {**best, "history": history})
    best = {**best, "history": history}
    model.load_state_dict(best_state)  # the best weights again, saved with every epoch's history (the curves)
    save_checkpoint(save, model, example_input_shape, best["best_epoch"], best)
    echo(f"best epoch {best['best_epoch']}: val_loss={best['val_loss']:.4f} val_acc={best['val_acc']:.4f} "
         f"saved to {save}")
    return best
