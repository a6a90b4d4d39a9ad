"""Training loop: AdamW, AMP on CUDA, grad clip 1.0, ReduceLROnPlateau on val loss, best-by-val-loss checkpoint.

For small EEG sets, all off by default (the guide's training is unchanged without them): augmentation
(eeg2arm.augment), label smoothing, a loss on the last few frames' decisions instead of the last one only, early
stopping, a cosine schedule, keeping the epoch of best val accuracy, and starting from another checkpoint's
weights (`init`, e.g. a cross-subject model for a new subject). Settings per shared set: benchmarks/recipes.toml.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from .augment import Augment, augment_batch
from .atomic import check_writable
from .checkpoint import load_model_from_checkpoint, save_checkpoint
from .config import DATA_FIELDS, EEGConfig
from .data import check_groups, check_labels, check_windows, split_indices
from .device import resolve_device
from .ensemble import train_ensemble
from .errors import UserInputError, difference
from .model import EEGModel
from .laplace import MAX_PRIOR_COLUMNS
from .readout import fit_readout

log = logging.getLogger("eeg2arm")
SCHEDULES = ("plateau", "cosine")
INPUT_SCALES = ("feature", "shared", "column")
SELECT = ("loss", "accuracy", "last")


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
    augment: Augment = Augment()
    label_smoothing: float = 0.0  # cross-entropy against (1 - eps) * one-hot + eps / K
    frame_loss: int = 1  # train the decisions of the last this many pooled frames (1: the guide's last frame)
    patience: int = 0  # stop after this many epochs without a better validation (by `select`; 0: run every epoch)
    schedule: str = "plateau"  # plateau: halve the lr after 3 epochs without a better val loss; cosine: to 0
    select: str = "loss"  # the epoch kept: lowest val loss, highest val accuracy (ties: lower loss), or the last
    val_last: bool = False  # validate on the last val_split of the trials in file order (time order), not at random
    readout_first: int = 0  # epochs that train the --readout alone (the network's head starts at zero), then all
    input_scale: str = "feature"  # each feature's own sd, one shared by all, or per feature and per readout column
    fit_readout: bool = False  # the --readout fitted by logistic regression first (epoch 0), then fixed (readout.py)

    @property
    def validates(self) -> bool:
        """Whether some trials are held out to validate (--val-split 0: every trial trains, the last epoch is kept)."""
        return self.val_split > 0

    def check(self) -> None:
        """Raise UserInputError for values the loop cannot use, naming the flag."""
        if not 0.0 <= self.val_split < 1.0:  # also refuses NaN
            raise UserInputError(f"--val-split must be in [0, 1) (0: no validation), got {self.val_split}")
        if not self.validates and (self.select != "last" or self.val_last or self.patience):  # --groups: train()
            raise UserInputError("--val-split 0 trains on every trial with nothing to validate on: give --select last, "
                                 "and neither --val-last nor --patience")
        if not 0 <= self.seed < 2**32:
            raise UserInputError(f"--seed must be in [0, 2**32), got {self.seed}")
        if self.batch < 1 or self.epochs < (0 if self.fit_readout else 1) or self.workers < 0:
            raise UserInputError("--batch and --epochs must be >= 1 (--epochs 0 only with --fit-readout) and "
                                 "--workers >= 0")
        if not (self.lr > 0 and self.wd >= 0):  # also refuses NaN
            raise UserInputError(f"--lr must be > 0 and --wd >= 0, got --lr {self.lr} --wd {self.wd}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserInputError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.schedule not in SCHEDULES:
            raise UserInputError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.select not in SELECT:
            raise UserInputError(f"--select must be one of {', '.join(SELECT)}, got {self.select!r}")
        if self.fit_readout and self.readout_first:
            raise UserInputError("--fit-readout fits the readout before the first epoch: give it or --readout-first, "
                                 "not both")
        if self.readout_first and not 0 <= self.readout_first < self.epochs:
            raise UserInputError(f"--readout-first must be in [0, --epochs) so that the network trains too, got "
                                 f"{self.readout_first} with --epochs {self.epochs}")
        if self.input_scale not in INPUT_SCALES:
            raise UserInputError(f"--input-scale must be one of {', '.join(INPUT_SCALES)}, got {self.input_scale!r}")
        if self.input_scale == "column" and not self.fit_readout:
            raise UserInputError("--input-scale column scales the columns of the fitted readout: give --fit-readout, "
                                 "or --input-scale feature")
        if self.frame_loss < 1 or self.patience < 0:
            raise UserInputError(f"--frame-loss must be >= 1 and --patience >= 0, got --frame-loss "
                                 f"{self.frame_loss} --patience {self.patience}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, recorded in the checkpoint's metrics as train_options."""
        return dataclasses.asdict(self)


def validates(train_args: Sequence[str]) -> bool:
    """Whether `eeg2arm train` with these arguments holds trials out to validate (not `--val-split 0` or
    `--val-split=0`; the last given wins, as click takes it)."""
    val_split = TrainOptions.val_split
    for arg, following in zip(train_args, [*train_args[1:], ""]):
        if arg == "--val-split":
            val_split = float(following)
        elif arg.startswith("--val-split="):
            val_split = float(arg.split("=", 1)[1])
    return val_split > 0


def settings_from_flags(flags: Mapping[str, Any]) -> tuple[EEGConfig, TrainOptions, dict[str, Any]]:
    """What `eeg2arm train`'s flags (by click's parameter names) say besides the data and where it goes: the
    network's config (the data's names not yet in it), the loop's options, and train()'s other keyword arguments
    (resume, init, freeze, restandardize). UserInputError for values the run cannot use."""
    f = flags
    opts = TrainOptions(batch=f["batch"], epochs=f["epochs"], lr=f["lr"], wd=f["wd"], val_split=f["val_split"],
                        seed=f["seed"], workers=f["workers"], compile=f["compile_"], device=f["device"],
                        schedule=f["schedule"], select=f["select"], val_last=f["val_last"],
                        augment=Augment(crop=f["crop"], noise=f["noise"], channel_drop=f["channel_drop"],
                                        mixup=f["mixup"]),
                        label_smoothing=f["label_smoothing"], frame_loss=f["frame_loss"], patience=f["patience"],
                        readout_first=f["readout_first"], input_scale=f["input_scale"],
                        fit_readout=f["fit_readout"])
    opts.check()
    config = EEGConfig(n_classes=f["classes"], n_electrodes=f["elec"], n_bands=f["bands"],
                       cnn_time_pool=f["cnn_time_pool"], frame_embed=f["frame_embed"], dropout=f["drop"],
                       normalize=f["normalize"], context=f["context"] or None, kernel_time=f["kernel_time"],
                       linear_stem=f["linear_stem"], n_layers=f["layers"], spatial_filters=f["spatial_filters"],
                       depth_multiplier=f["depth_multiplier"], readout_frames=f["readout"], ensemble=f["ensemble"])
    freeze = tuple(p.strip() for p in f["freeze"].split(",") if p.strip())
    return config, opts, {"resume": f["resume"], "init": f["init_path"], "freeze": freeze,
                          "restandardize": f["restandardize"]}


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


# EEGModel's parts, input side first, and the modules each one names (its LayerNorm goes with it).
FREEZABLE = {"stem": ("stem",), "mix": ("mix",), "embed": ("embed", "ln_embed"), "blocks": ("blocks",),
             "head": ("ln_f", "head", "readout")}  # readout: only with config.readout_frames


def check_same_model(theirs: EEGConfig, ours: EEGConfig, flag: str, ignore: tuple[str, ...] = ()) -> None:
    """Raise UserInputError naming every hyper-parameter where a checkpoint differs from this run; for --init also
    every description of the data (electrode, class and feature names, recipe) that both know and that differs."""
    a, b = theirs.to_dict(), ours.to_dict()
    keys = [k for k in theirs.hyperparameters() if k not in ignore]
    if flag == "--init":
        keys += [k for k in DATA_FIELDS if a[k] is not None and b[k] is not None]
    differ = ", ".join(difference(k, a[k], b[k]) for k in keys if a[k] != b[k])
    if differ:
        fix = "use the flags it was trained with" if flag == "--resume" else \
            "fine-tune on data prepared like its own (prepare --like) with the flags it was trained with"
        raise UserInputError(f"{flag} checkpoint was trained with {differ}: {fix}")


def refuse_ensemble(config: EEGConfig, path: str | Path, flag: str) -> None:
    """UserInputError when a checkpoint given to --init or --resume holds an ensemble (they take one network)."""
    if config.ensemble > 1:
        raise UserInputError(f"{flag} {path} is an ensemble of {config.ensemble} networks; {flag} takes one "
                             f"network: train the ensemble anew with --ensemble {config.ensemble}")


def load_init(path: str | Path, config: EEGConfig, device: torch.device, freeze: tuple[str, ...],
              restandardize_scale: str | None = None) -> EEGModel:
    """The model to fine-tune: a checkpoint's weights (same network, electrodes and classes), some parts frozen;
    `restandardize_scale`: the --input-scale its input standardization is to be refitted with, which must
    standardize as the checkpoint's did (one shared sd, or each feature's own: feature and column)."""
    unknown = sorted(set(freeze) - set(FREEZABLE))
    if unknown:
        raise UserInputError(f"--freeze {','.join(unknown)}: name parts of {', '.join(FREEZABLE)}")
    if set(freeze) == set(FREEZABLE):
        raise UserInputError(f"--freeze {','.join(freeze)} leaves nothing to train: leave out at least one part "
                             f"(e.g. head)")
    model, meta = load_model_from_checkpoint(path, device)
    refuse_ensemble(meta["config"], path, "--init")
    check_same_model(meta["config"], config, "--init", ignore=("dropout",))
    trained = meta["metrics"].get("train_options", {}).get("input_scale", "feature")
    shared = trained == "shared"  # "column" standardizes the input per feature, as "feature" does
    if restandardize_scale is not None and (restandardize_scale == "shared") != shared:
        raise UserInputError(f"--restandardize refits the input scale the checkpoint's readout was fitted on: give "
                             f"--input-scale {'shared' if shared else 'feature'}, as it was trained")
    fresh = EEGModel(config).materialize(meta["example_input_shape"]).to(device)  # this run's dropout
    fresh.load_state_dict(model.state_dict())
    for name in freeze:
        for module in FREEZABLE[name]:
            if hasattr(fresh, module):
                getattr(fresh, module).requires_grad_(False)
    return fresh


def train(X: np.ndarray, y: np.ndarray, config: EEGConfig, save: str | Path, opts: TrainOptions,
          groups: np.ndarray | None = None, resume: str | Path | None = None,
          echo: Callable[[str], None] = tqdm.write, init: str | Path | None = None,
          freeze: tuple[str, ...] = (), restandardize: bool = False, keep_prior: bool = True,
          progress: bool = True) -> dict[str, Any]:
    """Train EEGModel on X (N, C, F, T), y (N,), keep the best epoch (by val loss, or opts.select) at `save`;
    returns its metrics. With `keep_prior` a fitted two-class readout kept as it was fitted (epoch 0) keeps its
    fit as metrics.readout_prior, for `eeg2arm calibrate` (an ensemble's members keep none).

    `resume` goes on with a checkpoint's run (same flags, its epoch count); `init` starts a new run from a
    checkpoint's weights with a fresh optimizer (fine-tuning), optionally with `freeze`-named parts fixed and,
    with `restandardize`, the input standardization refitted to X (e.g. a new subject's own signal). `progress`
    shows a bar over the epochs (none when there are none)."""
    opts.check()
    if opts.readout_first and not config.readout_frames:
        raise UserInputError("--readout-first trains the linear readout alone first: give --readout N too")
    if opts.fit_readout and not config.readout_frames:
        raise UserInputError("--fit-readout fits the linear readout first: give --readout N too")
    if (opts.readout_first or opts.fit_readout) and init is not None:
        flag = "--fit-readout" if opts.fit_readout else "--readout-first"
        raise UserInputError(f"{flag} starts the network's head at zero: it trains a new model, not one from --init")
    if config.ensemble > 1 and opts.fit_readout and not opts.epochs:
        raise UserInputError(f"--ensemble {config.ensemble} with --fit-readout --epochs 0 would keep "
                             f"{config.ensemble} identical members (the fit has no randomness): leave --ensemble out")
    if config.ensemble > 1:
        return train_ensemble(X, y, config, save, opts, groups, echo, progress, resume=resume, init=init,
                              freeze=freeze, restandardize=restandardize)
    save = Path(save)
    check_writable(save, "--save")
    if resume is not None and init is not None:
        raise UserInputError("give --resume (go on with a run) or --init (start a new run from weights), not both")
    if (freeze or restandardize) and init is None:
        raise UserInputError("--freeze and --restandardize fine-tune a model: they need --init CKPT")
    device = resolve_device(opts.device)
    torch.manual_seed(opts.seed)
    np.random.seed(opts.seed)

    start_epoch, best, history, best_state, prior = 1, None, [], None, None
    if resume is not None:
        model, meta = load_model_from_checkpoint(resume, device)
        refuse_ensemble(meta["config"], resume, "--resume")
        if "calibration" in meta["metrics"]:
            raise UserInputError(f"--resume {resume} was calibrated (eeg2arm calibrate) after its run: resume the "
                                 f"checkpoint it was calibrated from, then calibrate again")
        check_same_model(model.config, config, "--resume")
        recorded_options = meta["metrics"].get("train_options", {})
        for name in ("val_split", "fit_readout", "input_scale"):  # what the kept weights and the split depend on
            trained, now = recorded_options.get(name, getattr(opts, name)), getattr(opts, name)
            if trained != now:
                raise UserInputError(f"--resume checkpoint was trained with {name}={trained!r} (now {now!r}): use "
                                     f"the flags it was trained with")
        # Training goes on from the checkpoint's (best) weights, so the epochs after them are run again.
        start_epoch, best, best_state = meta["epoch"] + 1, meta["metrics"], state_copy(model)
        history = [h for h in meta["metrics"]["history"] if h["epoch"] <= meta["epoch"]]
        if start_epoch > opts.epochs:
            raise UserInputError(f"--resume checkpoint is already at epoch {meta['epoch']}; raise --epochs")
    X = check_windows(X, config, single_ok=False, training=True)
    y = check_labels(y, len(X), config.n_classes)
    pooled = X.shape[-1] // config.cnn_time_pool  # decisions per window
    if opts.frame_loss > pooled:
        raise UserInputError(f"--frame-loss {opts.frame_loss} is more than the {pooled} pooled frames of a window "
                             f"(T={X.shape[-1]}, --cnn-time-pool {config.cnn_time_pool}): use at most {pooled}")
    seen = min(X.shape[-1], config.clip_length or X.shape[-1])  # frames the model sees of a window
    if config.readout_frames > seen:
        raise UserInputError(f"--readout {config.readout_frames} reads more frames than the {seen} of a window: use at "
                             f"most {seen} (older frames would only ever read zeros)")
    if groups is not None:
        if not opts.validates:
            raise UserInputError("--groups splits the validation by group, but --val-split 0 validates on none: "
                                 "give one")
        groups = check_groups(groups, len(X))
    train_idx, val_idx = split_indices(y, opts.val_split, opts.seed, groups, opts.val_last)
    example_input_shape = (1, *X.shape[1:])
    if init is not None:
        model = load_init(init, config, device, freeze, opts.input_scale if restandardize else None)
        if restandardize:
            model.set_input_stats(torch.from_numpy(X[train_idx]), shared=opts.input_scale == "shared")
    elif resume is None:
        model = EEGModel(config).materialize(example_input_shape).to(device)
        model.set_input_stats(torch.from_numpy(X[train_idx]), shared=opts.input_scale == "shared")
        if opts.readout_first:
            model.silence_network()
        if opts.fit_readout:  # the regression's fit, as epoch 0: the network's head at zero
            prior = fit_readout(model, X[train_idx], y[train_idx], opts.input_scale == "column", keep_prior)
            if keep_prior and prior is None and config.n_classes == 2:
                echo(f"the readout reads more than {MAX_PRIOR_COLUMNS - 1} columns: no readout_prior kept, so "
                     f"`eeg2arm calibrate` cannot update it (fewer --readout frames would)")
    if opts.fit_readout:  # fixed from here on, also when a run resumes
        model.readout.requires_grad_(False)

    def loader(idx: np.ndarray, shuffle: bool) -> DataLoader:
        ds = TensorDataset(torch.from_numpy(X[idx]), torch.from_numpy(y[idx]))
        return DataLoader(ds, batch_size=opts.batch, shuffle=shuffle, num_workers=opts.workers,
                          persistent_workers=opts.workers > 0, pin_memory=device.type == "cuda")

    train_loader, val_loader = loader(train_idx, True), loader(val_idx, False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=opts.lr,
                                  weight_decay=opts.wd)
    if opts.schedule == "cosine":  # a fixed decay: a small, noisy validation split does not steer the lr
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=opts.epochs)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=3)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    runner = maybe_compile(model, torch.from_numpy(X[:2]).to(device)) if opts.compile else model
    recorded = {"train_options": opts.to_dict(), "init": None if init is None else str(init),
                "freeze": list(freeze), "restandardize": restandardize}

    def kept(row: dict[str, Any], fitted: dict[str, Any] | None = None) -> dict[str, Any]:
        """The metrics of the best epoch so far (this row), saved with the model's weights as they are now; `fitted`:
        the fitted readout's prior, which describes the model only while the network adds nothing (epoch 0)."""
        best = {**row, "best_epoch": row["epoch"], "n_train": len(train_idx), "n_val": len(val_idx),
                "val_indices": val_idx.tolist(), **recorded, **({"readout_prior": fitted} if fitted else {})}
        save_checkpoint(save, model, example_input_shape, row["epoch"], {**best, "history": history})
        return best

    network = [p for name, p in model.named_parameters() if p.requires_grad and not name.startswith("readout.")]
    if opts.fit_readout and resume is None:  # the fitted readout alone is a candidate like every epoch
        train_loss, _ = evaluate_loss(runner, loader(train_idx, False), device)
        val_loss, val_acc = evaluate_loss(runner, val_loader, device) if opts.validates else (None, None)
        row = {"epoch": 0, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc, "lr": 0.0,
               "seconds": 0.0}
        history.append(row)
        echo(f"epoch 0 (the fitted readout) train_loss={train_loss:.4f} {validation_text(row)}")
        best, best_state = kept(row, prior), state_copy(model)
    epochs = range(start_epoch, opts.epochs + 1)
    for epoch in tqdm(epochs, desc="training", unit="epoch", leave=False, disable=not (progress and epochs)):
        t0 = time.perf_counter()
        for p in network:  # AdamW leaves a parameter without a gradient as it is (no step, no weight decay)
            p.requires_grad_(epoch > opts.readout_first)
        runner.train()
        loss_sum, n = 0.0, 0
        for xb, yb in train_loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss = batch_loss(runner, model, xb, yb, opts)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.item() * len(yb)
            n += len(yb)
        val_loss, val_acc = evaluate_loss(runner, val_loader, device) if opts.validates else (None, None)
        lr = optimizer.param_groups[0]["lr"]
        if opts.schedule == "cosine":
            scheduler.step()
        elif epoch > opts.readout_first:  # the readout's plateaus alone do not lower the network's lr
            scheduler.step(val_loss if opts.validates else loss_sum / n)
        row = {"epoch": epoch, "train_loss": loss_sum / n, "val_loss": val_loss, "val_acc": val_acc, "lr": lr,
               "seconds": time.perf_counter() - t0}
        history.append(row)
        echo(f"epoch {epoch}/{opts.epochs} train_loss={row['train_loss']:.4f} {validation_text(row)} lr={lr:.2e}")
        if best is None or better(row, best, opts.select):
            best, best_state = kept(row), state_copy(model)
        elif opts.patience and epoch - max(best["best_epoch"], opts.readout_first) >= opts.patience:
            echo(f"early stop: no better val_{opts.select} for {opts.patience} epochs")
            break
    best = {**best, "history": history}
    model.load_state_dict(best_state)  # the best weights again, saved with every epoch's history (the curves)
    save_checkpoint(save, model, example_input_shape, best["best_epoch"], best)
    echo(f"best epoch {best['best_epoch']}: {validation_text(best)} saved to {save}")
    return best


def validation_text(row: dict[str, Any]) -> str:
    """An epoch's validation as printed, or that there is none (--val-split 0)."""
    if row["val_loss"] is None:
        return "no validation (--val-split 0)"
    return f"val_loss={row['val_loss']:.4f} val_acc={row['val_acc']:.4f}"


def better(row: dict[str, Any], best: dict[str, Any], select: str) -> bool:
    """Whether this epoch's validation beats the best so far, by loss or by accuracy (then loss); with `last`
    every epoch does (a validation of a few trials, as in a new subject's fine-tuning, cannot pick one)."""
    if select == "last":
        return True
    if select == "accuracy":
        return (row["val_acc"], -row["val_loss"]) > (best["val_acc"], -best["val_loss"])
    return row["val_loss"] < best["val_loss"]


def batch_loss(runner: nn.Module, model: EEGModel, xb: torch.Tensor, yb: torch.Tensor,
               opts: TrainOptions) -> torch.Tensor:
    """Cross-entropy of one training batch, after augmentation, on the last `frame_loss` frames' logits."""
    k = model.config.n_classes
    if opts.augment.active:
        xb, target = augment_batch(xb, yb, opts.augment, k, model.input_mean, model.input_std,
                                   model.config.min_frames)
    else:
        target = nn.functional.one_hot(yb, k).to(xb.dtype)  # (B, K)
    if opts.frame_loss == 1:
        logits = runner(xb)  # (B, K): the guide's decision, the last frame's
    else:
        frames = runner.forward_seq(xb)[:, -opts.frame_loss:]  # (B, T'', K)
        logits, target = frames.reshape(-1, k), target.repeat_interleave(frames.shape[1], dim=0)
    return nn.functional.cross_entropy(logits.float(), target.float(), label_smoothing=opts.label_smoothing)
