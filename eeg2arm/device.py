"""Pick the torch device: CUDA when present, else CPU with one logged warning."""
from __future__ import annotations

import logging

import torch

from .errors import UserInputError

log = logging.getLogger("eeg2arm")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA if available else CPU (warned once); 'cuda' without a GPU is a user error."""
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        raise UserInputError("--device cuda was asked for but CUDA is not available: use --device auto or cpu")
    log.warning("CUDA is not available; running on CPU")
    return torch.device("cpu")
