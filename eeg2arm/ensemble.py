"""`train --ensemble N`: N EEGModels of one config, trained apart (seeds seed, seed+1, ...), their logits averaged.

One checkpoint holds them (`members.i.*` weights, config.ensemble = N); the batch graph, the step graph
(eeg2arm.realtime.decoder.EnsembleStreamingDecoder) and the service run them as one model.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
import torch.nn as nn

from .atomic import check_writable
from .config import EEGConfig
from .errors import UserInputError
from .model import EEGModel

if TYPE_CHECKING:
    from .train import TrainOptions


class EEGEnsemble(nn.Module):
    """(B, C, F, T) -> the mean of its members' logits: forward, forward_seq, materialize and config as EEGModel's
    (training, standardization and freezing belong to each member)."""

    def __init__(self, config: EEGConfig):
        super().__init__()
        self.config = config
        member = dataclasses.replace(config, ensemble=1)
        self.members = nn.ModuleList(EEGModel(member) for _ in range(config.ensemble))

    def forward_seq(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame logits (B, T', K): the members' averaged."""
        return torch.stack([member.forward_seq(x) for member in self.members]).mean(dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the last frame (B, K)."""
        return self.forward_seq(x)[:, -1]

    @torch.no_grad()
    def materialize(self, example_input_shape: tuple[int, ...]) -> EEGEnsemble:
        for member in self.members:
            member.materialize(example_input_shape)
        return self


def build_model(config: EEGConfig) -> EEGModel | EEGEnsemble:
    """The network a config describes: one EEGModel, or an ensemble of config.ensemble of them."""
    return EEGEnsemble(config) if config.ensemble > 1 else EEGModel(config)


def train_ensemble(X: np.ndarray, y: np.ndarray, config: EEGConfig, save: str | Path, opts: TrainOptions,
                   groups: np.ndarray | None, echo: Callable[[str], None], progress: bool = True,
                   **fine_tuning: Any) -> dict[str, Any]:
    """Train config.ensemble members as `train` trains one model, member i with seed opts.seed + i, and save them
    as one checkpoint at `save`; returns its metrics ({"members": each member's metrics, ...}). Each member keeps
    its own validation split (drawn with its seed), so the ensemble has no common held-out set; the checkpoint's
    epoch is the latest of the members' kept epochs."""
    from .checkpoint import load_model_from_checkpoint, save_checkpoint
    from .train import train

    save = Path(save)
    check_writable(save, "--save")
    given = [flag for flag, value in fine_tuning.items() if value]
    if given:
        raise UserInputError(f"--ensemble trains new members: it cannot go on from or fine-tune a checkpoint "
                             f"({', '.join('--' + g for g in given)}); train without --ensemble for that")
    if opts.seed + config.ensemble - 1 >= 2**32:
        raise UserInputError(f"--seed {opts.seed} with --ensemble {config.ensemble}: the members' seeds run past "
                             f"2**32 - 1; give a smaller --seed")
    member_config = dataclasses.replace(config, ensemble=1)
    members, metrics = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(config.ensemble):
            echo(f"member {i + 1}/{config.ensemble} (seed {opts.seed + i})")
            path = Path(tmp) / f"member{i}.pt"
            member = train(X, y, member_config, path, dataclasses.replace(opts, seed=opts.seed + i), groups=groups,
                           echo=lambda line: echo(line.replace(f" saved to {path}", "")), keep_prior=False,
                           progress=progress)
            metrics.append(member)
            model, meta = load_model_from_checkpoint(path)
            members.append(model)
    ensemble = EEGEnsemble(config)
    ensemble.members = nn.ModuleList(members)
    best = {"members": metrics, "train_options": opts.to_dict(), "ensemble": config.ensemble}
    save_checkpoint(save, ensemble, meta["example_input_shape"], max(m["best_epoch"] for m in metrics), best)
    echo(f"ensemble of {config.ensemble} saved to {save}")
    return best
