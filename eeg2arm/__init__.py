"""eeg2arm: band-power EEG -> robot-arm decisions. Train, export to ONNX, serve."""
from .checkpoint import CHECKPOINT_VERSION, load_model_from_checkpoint
from .config import EEGConfig
from .errors import UserInputError
from .model import EEGModel, Hysteresis

__all__ = ["CHECKPOINT_VERSION", "EEGConfig", "EEGModel", "Hysteresis", "UserInputError", "load_model_from_checkpoint"]
