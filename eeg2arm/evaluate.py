"""`eeg2arm evaluate`: a checkpoint's scores on labelled windows (scikit-learn) and its figures (matplotlib, Agg)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import (ConfusionMatrixDisplay, accuracy_score, balanced_accuracy_score, cohen_kappa_score,
                             confusion_matrix, precision_recall_fscore_support)

from .atomic import atomic_write
from .checkpoint import load_model_from_checkpoint
from .config import DATA_FIELDS, SIZED_FIELDS, EEGConfig
from .data import check_groups, check_labels, check_windows
from .device import resolve_device
from .errors import UserInputError, brief, first_difference
from .infer import predict_logits
from .recipe import RECIPE_NEEDS, Recipe


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, Cohen's kappa, per-class precision/recall/support and the confusion matrix
    (rows: true class, columns: predicted class), all from scikit-learn, as plain Python types."""
    labels = list(range(len(class_names)))
    precision, recall, _, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "kappa": float(cohen_kappa_score(y_true, y_pred, labels=labels)),
        "class_names": list(class_names),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "support": support.tolist(),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def group_metrics(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray,
                  group_names: list[str] | None = None) -> list[dict[str, Any]]:
    """Accuracy per group (a subject or a recording, from prepare's groups.npy), in group id order; a group is
    named group_names[id] when names are given."""
    rows = []
    for g in np.unique(groups):
        mask = groups == g
        name = group_names[g] if group_names is not None and 0 <= g < len(group_names) else str(g)
        rows.append({"group": name, "n": int(mask.sum()), "accuracy": float(accuracy_score(y_true[mask],
                                                                                         y_pred[mask]))})
    return rows


def format_metrics(m: dict[str, Any]) -> list[str]:
    """The printed report: one summary line, one line per class, per group if given, then the confusion matrix."""
    names = m["class_names"]
    lines = [f"n={m['n']} accuracy={m['accuracy']:.4f} balanced_accuracy={m['balanced_accuracy']:.4f} "
             f"kappa={m['kappa']:.4f}"]
    for k, name in enumerate(names):
        lines.append(f"class {k} {name}: precision={m['precision'][k]:.4f} recall={m['recall'][k]:.4f} "
                     f"support={m['support'][k]}")
    if m.get("groups"):
        accuracies = [row["accuracy"] for row in m["groups"]]
        lines += [f"group {row['group']}: n={row['n']} accuracy={row['accuracy']:.4f}" for row in m["groups"]]
        lines.append(f"groups: {len(accuracies)}, accuracy mean={np.mean(accuracies):.4f} "
                     f"sd={np.std(accuracies):.4f}")
    width = max(len(n) for n in names + [str(max(max(r) for r in m["confusion"]))])
    lines.append("confusion matrix (rows: true class, columns: predicted class):")
    lines.append(" " * width + "".join(f"  {n:>{width}}" for n in names))
    lines += [f"{name:>{width}}" + "".join(f"  {v:>{width}}" for v in row) for name, row in zip(names, m["confusion"])]
    return lines


def save_figure(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)  # render with Agg: no display, no pyplot state
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))


def plot_confusion(m: dict[str, Any], path: Path) -> None:
    fig = Figure(figsize=(1.6 + 1.1 * len(m["class_names"]), 1.2 + 1.1 * len(m["class_names"])), layout="constrained")
    ax = fig.add_subplot()
    ConfusionMatrixDisplay(np.array(m["confusion"]), display_labels=m["class_names"]).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=30)
    ax.set_title(f"accuracy {m['accuracy']:.3f}, balanced {m['balanced_accuracy']:.3f} (n={m['n']})")
    save_figure(fig, path)


def training_histories(metrics: dict[str, Any]) -> dict[str, list | None]:
    """{figure file name: epoch history}: training.png, or one training-memberI.png per member of an ensemble."""
    if "members" in metrics:
        return {f"training-member{i + 1}.png": m.get("history") for i, m in enumerate(metrics["members"])}
    return {"training.png": metrics.get("history")}


def plot_history(history: list[dict[str, float | None]], path: Path) -> None:
    """Loss (train, val) and validation accuracy per epoch, from the checkpoint's metrics["history"]."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    validated = all(r["val_loss"] is not None for r in history)  # none with --val-split 0
    loss_ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    if validated:
        loss_ax.plot(epochs, [r["val_loss"] for r in history], "o-", label="validation")
        acc_ax.plot(epochs, [r["val_acc"] for r in history], "o-", color="C1")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    loss_ax.legend()
    acc_ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02),
               title="validation accuracy" if validated else "validation accuracy: none (--val-split 0)")
    fig.suptitle(f"history kept in the checkpoint (epochs {epochs[0]}-{epochs[-1]})")
    save_figure(fig, path)


def recorded(config: EEGConfig) -> dict[str, Any]:
    """How a config says its data were made: its classes and whole recipe, every default filled in (a config made
    before recipes: band power of the unreferenced signal), when it records a recipe; else the data fields it has."""
    fields = {name: getattr(config, name) for name in DATA_FIELDS if getattr(config, name) is not None}
    if any(name not in fields for name in RECIPE_NEEDS):  # e.g. a model trained on arrays of unknown origin
        return fields
    return {"class_names": fields.get("class_names"), **dataclasses.asdict(Recipe.from_fields(fields))}


def check_data_meta(config: EEGConfig, fields: dict[str, Any]) -> None:
    """Refuse windows whose meta.json says they were made differently from the model's training data."""
    sizes = {size: len(fields[name]) for name, size in SIZED_FIELDS if fields.get(name) is not None}
    data = EEGConfig.from_dict({**config.to_dict(), **dict.fromkeys(DATA_FIELDS), **fields, **sizes})  # typed as ours
    theirs, ours = recorded(data), recorded(config)
    for name, value in theirs.items():
        if value is not None and ours.get(name) is not None and value != ours[name]:
            name, value, trained = first_difference(name, value, ours[name])
            raise UserInputError(f"the data's meta.json has {name}={brief(value, str)} but the model was trained on "
                                 f"{brief(trained, str)}: prepare the data with the training options (prepare --like "
                                 f"the training data's meta.json)")


def evaluate(ckpt: str | Path, X: np.ndarray, y: np.ndarray, report: str | Path | None = None,
             device: str = "auto", data_meta: dict[str, Any] | None = None, groups: np.ndarray | None = None,
             group_names: list[str] | None = None) -> dict[str, Any]:
    """Score a checkpoint on X (N, C, F, T), y (N,); with `report`, write confusion.png and training.png (one per
    member of an ensemble) there.
    With `groups` (N,), metrics["groups"] holds the accuracy per group (see group_metrics)."""
    model, meta = load_model_from_checkpoint(ckpt)  # on CPU until every input is checked
    config = meta["config"]
    if data_meta:  # first: data of another recipe are named as such, not by the shapes or labels they give
        check_data_meta(config, data_meta)
    X = check_windows(X, config)
    y = check_labels(y, len(X), config.n_classes, training=False)
    if groups is not None:
        groups = check_groups(groups, len(X))
    y_pred = predict_logits(model.to(resolve_device(device)), X).argmax(axis=-1)
    names = config.labels
    metrics = classification_metrics(y, y_pred, names)
    if groups is not None:
        metrics["groups"] = group_metrics(y, y_pred, groups, group_names)
    if report is not None:
        report, histories = Path(report), training_histories(meta["metrics"])
        if not report.parent.is_dir():
            raise UserInputError(f"--report parent folder does not exist: {report.parent}")
        if not all(histories.values()):
            raise UserInputError(f"{ckpt} keeps no training history (metrics['history']) to plot: evaluate it "
                                 f"without --report")
        report.mkdir(exist_ok=True)
        plot_confusion(metrics, report / "confusion.png")
        for name, history in histories.items():
            plot_history(history, report / name)
    return metrics
