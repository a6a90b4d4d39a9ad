"""eeg2arm: band-power EEG -> robot-arm decisions. Train, export to ONNX, serve."""
from importlib import import_module
from typing import Any

from .config import EEGConfig
from .errors import UserInputError

# The torch-backed names load on first use, so that the service (numpy + ONNX Runtime) never imports torch.
_LAZY = {"CHECKPOINT_VERSION": "checkpoint", "load_model_from_checkpoint": "checkpoint",
         "EEGModel": "model", "EEGEnsemble": "ensemble", "Hysteresis": "realtime.smoothing", "Decoder": "estimator"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CHECKPOINT_VERSION", "Decoder", "EEGConfig", "EEGEnsemble", "EEGModel", "Hysteresis", "UserInputError", "load_model_from_checkpoint"]
