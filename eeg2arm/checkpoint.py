"""The .pt checkpoint: exactly the guide's keys, written atomically, read with weights_only=True."""
from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write
from .config import EEGConfig
from .ensemble import EEGEnsemble, build_model
from .errors import UserInputError
from .model import EEGModel

CHECKPOINT_VERSION = "eeg_model_v1.5"
CHECKPOINT_KEYS = ("model_state", "config", "example_input_shape", "epoch", "metrics", "version")


def save_checkpoint(path: str | Path, model: EEGModel | EEGEnsemble, example_input_shape: tuple[int, ...], epoch: int,
                    metrics: dict[str, Any]) -> None:
    ckpt = {
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": model.config.to_dict(),
        "example_input_shape": tuple(int(d) for d in example_input_shape),
        "epoch": int(epoch),
        "metrics": metrics,
        "version": CHECKPOINT_VERSION,
    }
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def weights_digest(model: EEGModel | EEGEnsemble) -> str:
    """sha256 of the model's weights (names, dtypes, shapes and values): what an export records, so that a graph
    compared with another checkpoint of the same config is named as such."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a checkpoint dict; raise UserInputError for missing, corrupt, unsafe or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        if path.suffix.lower() == ".onnx":
            raise UserInputError(f"{path} is an ONNX model (`eeg2arm export`), not a checkpoint: give it as --onnx "
                                 f"(infer, stream, parity), or give the .pt it was exported from")
        raise UserInputError(f"checkpoint {path} is corrupt or truncated (not a torch.save archive); retrain or "
                             f"restore it")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        culprit = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        what = f" ({culprit.group(1)})" if culprit else ""
        raise UserInputError(f"checkpoint {path} was refused: it holds Python objects{what}, not plain weights "
                             f"(loaded with weights_only=True); only load checkpoints written by eeg2arm train") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        raise UserInputError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}); retrain or "
                             f"restore it") from None
    if not isinstance(ckpt, dict) or set(CHECKPOINT_KEYS) - set(ckpt):
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UserInputError(f"{path} is not an eeg2arm checkpoint (expected keys {list(CHECKPOINT_KEYS)}, "
                             f"found {found})")
    if ckpt["version"] != CHECKPOINT_VERSION:
        raise UserInputError(f"checkpoint {path} has version {ckpt['version']!r}; this eeg2arm reads "
                             f"{CHECKPOINT_VERSION!r}: retrain it")
    shape = ckpt["example_input_shape"]
    wrong = [key for key, ok in (
        ("model_state", isinstance(ckpt["model_state"], dict)),
        ("config", isinstance(ckpt["config"], dict)),
        ("example_input_shape", isinstance(shape, (tuple, list)) and len(shape) == 4
         and all(isinstance(d, int) and d >= 1 for d in shape)),
        ("epoch", isinstance(ckpt["epoch"], int)),
        ("metrics", isinstance(ckpt["metrics"], dict)),
    ) if not ok]
    if wrong:
        raise UserInputError(f"checkpoint {path} has eeg2arm's keys but invalid {', '.join(wrong)}: it was not "
                             f"written by eeg2arm train (or was edited); retrain or restore it")
    return ckpt


def load_model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu"
                               ) -> tuple[EEGModel | EEGEnsemble, dict[str, Any]]:
    """Rebuild the trained model (lazy layers materialized from example_input_shape) in eval mode.

    Returns (model, meta) with meta = {config: EEGConfig, example_input_shape, epoch, metrics, version}.
    """
    ckpt = read_checkpoint(path)
    config = EEGConfig.from_dict(ckpt["config"])
    model = build_model(config).materialize(ckpt["example_input_shape"])
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as e:
        raise UserInputError(f"checkpoint {path} weights do not fit its config ({str(e).splitlines()[0]})") from None
    meta = {k: ckpt[k] for k in CHECKPOINT_KEYS if k != "model_state"}
    meta["config"] = config
    return model.to(device).eval(), meta
