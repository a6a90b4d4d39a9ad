"""TEMPORARY stand-in for the export branch's metadata reader and session helper (replaced on merge)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from eeg2arm.config import EEGConfig

log = logging.getLogger("eeg2arm")


def read_onnx_metadata(path: str | Path) -> dict:
    m = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in m.metadata_props}
    return {"config": EEGConfig.from_json(props["config"]), "version": props["version"]}


def make_session(path: str | Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    avail = ort.get_available_providers()
    if "CUDAExecutionProvider" in avail:
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    else:
        log.warning("CUDA is not available; ONNX Runtime runs on CPU")
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), opts, providers=providers)
