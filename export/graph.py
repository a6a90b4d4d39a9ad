"""What the exported ONNX graph computes, as a torch module: the one definition of its outputs."""
from __future__ import annotations

import torch
import torch.nn as nn

from eeg2arm.ensemble import EEGEnsemble
from eeg2arm.model import EEGModel

INPUT_NAME = "x"
OUTPUT_NAMES = ("logits", "probs", "frame_logits")


class ExportGraph(nn.Module):
    """Raw band power (B, C, F, T) -> logits (B, K), probs (B, K), frame_logits (B, T', K).

    The model applies its training normalization itself (config.normalize), and the softmax is here, so one
    graph gives the whole answer. frame_logits are the causal per-frame logits for streaming.
    """

    def __init__(self, model: EEGModel | EEGEnsemble):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        frame_logits = self.model.forward_seq(x)  # (B, T', K)
        logits = frame_logits[:, -1]  # (B, K): the last frame, as EEGModel.forward
        return logits, torch.softmax(logits, dim=-1), frame_logits
