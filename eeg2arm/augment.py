"""Training-time augmentation for small EEG sets: random time crops, feature noise, electrode dropout, mixup.

All of it works on the model's input (B, C, F, T) and only while training; validation, evaluation, export and
streaming see the data untouched. Amounts are in units of the model's own input standardization (input_mean,
input_std per electrode and band), so one setting means the same on log band power and on µV.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import UserInputError


@dataclass(frozen=True)
class Augment:
    crop: float = 0.0  # > 0: train on random windows of at least this fraction of T frames, ending anywhere
    noise: float = 0.0  # sd of Gaussian noise added to every feature, in input_std units
    channel_drop: float = 0.0  # probability that a whole electrode of a window is replaced by its training mean
    mixup: float = 0.0  # > 0: mix pairs of windows and their labels with a Beta(mixup, mixup) weight

    def __post_init__(self) -> None:
        checks = (("--crop", self.crop, 0.0 <= self.crop <= 1.0, "between 0 (off) and 1"),
                  ("--noise", self.noise, self.noise >= 0.0, ">= 0"),
                  ("--channel-drop", self.channel_drop, 0.0 <= self.channel_drop < 1.0, "in [0, 1)"),
                  ("--mixup", self.mixup, self.mixup >= 0.0, ">= 0 (the Beta distribution's alpha; 0 is off)"))
        for flag, value, ok, rule in checks:
            if not ok:  # also refuses NaN, for which every comparison is False
                raise UserInputError(f"{flag} must be {rule}, got {value}")

    @property
    def active(self) -> bool:
        return bool(self.crop or self.noise or self.channel_drop or self.mixup)


def random_crop(x: torch.Tensor, min_frames: int) -> torch.Tensor:
    """One random length L in [min_frames, T] per batch, a random end per window: (B, C, F, T) -> (B, C, F, L).

    The model is causal and takes any T, so a crop is what it would see at an earlier moment of a stream."""
    T = x.shape[-1]
    length = int(torch.randint(min(min_frames, T), T + 1, ()).item())
    ends = torch.randint(length, T + 1, (x.shape[0],), device=x.device)  # (B,) exclusive ends
    idx = ends[:, None] - length + torch.arange(length, device=x.device)  # (B, L)
    return torch.take_along_dim(x, idx[:, None, None, :].expand(*x.shape[:3], length), dim=3)


def augment_batch(x: torch.Tensor, y: torch.Tensor, aug: Augment, n_classes: int, input_mean: torch.Tensor,
                  input_std: torch.Tensor, min_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented windows (B, C, F, T') and soft targets (B, K) for one training batch x (B, C, F, T), y (B,)."""
    target = F.one_hot(y, n_classes).to(x.dtype)  # (B, K)
    if aug.crop:
        x = random_crop(x, max(min_frames, round(aug.crop * x.shape[-1])))
    if aug.channel_drop:
        dropped = torch.rand(x.shape[0], x.shape[1], 1, 1, device=x.device) < aug.channel_drop  # (B, C, 1, 1)
        x = torch.where(dropped, input_mean.to(x.dtype), x)  # the mean: zero after the model's standardization
    if aug.noise:
        x = x + aug.noise * input_std.to(x.dtype) * torch.randn_like(x)
    if aug.mixup:
        lam = float(torch.distributions.Beta(aug.mixup, aug.mixup).sample())
        perm = torch.randperm(x.shape[0], device=x.device)
        x = lam * x + (1.0 - lam) * x[perm]
        target = lam * target + (1.0 - lam) * target[perm]
    return x, target
