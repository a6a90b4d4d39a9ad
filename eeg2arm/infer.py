"""Batch inference from a checkpoint: logits for (B, C, F, T) windows and the guide's printed lines."""
from __future__ import annotations

import logging

import numpy as np
import torch

from .ensemble import EEGEnsemble
from .model import EEGModel

log = logging.getLogger("eeg2arm")


@torch.no_grad()
def predict_logits(model: EEGModel | EEGEnsemble, X: np.ndarray, batch: int = 256) -> np.ndarray:
    """Logits (B, K) for validated float32 windows X (B, C, F, T)."""
    device = next(model.parameters()).device
    model.eval()
    out = [model(torch.from_numpy(X[i:i + batch]).to(device)).float().cpu() for i in range(0, len(X), batch)]
    return torch.cat(out).numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def format_predictions(logits: np.ndarray, use_softmax: bool = True,
                       class_names: tuple[str, ...] | None = None) -> list[str]:
    """One line per sample: `[sample 0] pred=3 conf=0.9123` (or `logits=[...]`), plus ` label=NAME` when known."""
    lines = []
    probs = softmax(logits)
    for i, (lg, pr) in enumerate(zip(logits, probs)):
        pred = int(pr.argmax())
        value = f"conf={pr[pred]:.4f}" if use_softmax else "logits=[" + ", ".join(f"{v:.4f}" for v in lg) + "]"
        label = f" label={class_names[pred]}" if class_names else ""
        lines.append(f"[sample {i}] pred={pred} {value}{label}")
    return lines
