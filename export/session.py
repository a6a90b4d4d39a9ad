"""ONNX Runtime sessions for exported eeg2arm models: provider choice, session options, input validation.

    predictor = OnnxPredictor("model.onnx")          # CUDA when it works, else CPU (one warning)
    out = predictor.run(x)                            # x (B, C, F, T) -> {"logits": (B, K), "probs": (B, K), ...}
    predictor.providers                               # what ONNX Runtime really uses, e.g. ["CPUExecutionProvider"]
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort

from eeg2arm.data import check_windows
from eeg2arm.errors import UserInputError

from .metadata import check_batch_graph, parse_metadata

log = logging.getLogger("eeg2arm")

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
ORT_DEFAULT_SEVERITY = 2  # warning: ONNX Runtime's own default, restored after a CUDA probe
ORT_ERRORS = (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidGraph,
              ort.capi.onnxruntime_pybind11_state.InvalidProtobuf, ort.capi.onnxruntime_pybind11_state.NotImplemented)
RUN_ERRORS = (ort.capi.onnxruntime_pybind11_state.InvalidArgument,  # what session.run raises besides ORT_ERRORS
              ort.capi.onnxruntime_pybind11_state.RuntimeException)


def session_options(intra_op_num_threads: int = 1) -> ort.SessionOptions:
    """All graph optimizations, a small thread pool that does not spin (a spinning pool burns ~0.8 core idle)."""
    if intra_op_num_threads < 1:
        raise UserInputError(f"intra_op_num_threads must be >= 1, got {intra_op_num_threads}")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = intra_op_num_threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


@contextlib.contextmanager
def _ort_logs_muted() -> Iterator[None]:
    """Silence ONNX Runtime's default logger while CUDA is probed: a missing CUDA library is our one warning."""
    ort.set_default_logger_severity(4)  # fatal only
    try:
        yield
    finally:
        ort.set_default_logger_severity(ORT_DEFAULT_SEVERITY)


def make_session(model: str | Path | bytes, device: str = "auto",
                 intra_op_num_threads: int = 1) -> ort.InferenceSession:
    """An InferenceSession on CUDA when ONNX Runtime can really use it, else on CPU.

    device: "auto" (CUDA if it works, else CPU with one logged warning), "cuda" (UserInputError without it) or
    "cpu". `model` is a path or the serialized model bytes.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise UserInputError(f"device must be auto, cpu or cuda, got {device!r}")
    source = "the exported model" if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes):
        if not Path(model).is_file():
            raise UserInputError(f"ONNX model not found: {model}")
        model = str(model)
    want_cuda = device != "cpu" and CUDA in ort.get_available_providers()
    providers = [CUDA, CPU] if want_cuda else [CPU]
    try:
        with _ort_logs_muted() if want_cuda else contextlib.nullcontext():
            session = ort.InferenceSession(model, session_options(intra_op_num_threads), providers=providers)
    except ORT_ERRORS as e:
        first = str(e).strip().splitlines()[0][:200]
        raise UserInputError(f"ONNX Runtime cannot load {source} ({first}); export it again") from None
    if device != "cpu" and CUDA not in session.get_providers():
        if device == "cuda":
            raise UserInputError("--device cuda was asked for but ONNX Runtime cannot use CUDA here (missing GPU, "
                                 "driver or CUDA/cuDNN libraries): use --device auto or cpu")
        log.warning("ONNX Runtime cannot use CUDA here; running on CPU")
    return session


class OnnxModel:
    """An eeg2arm export in ONNX Runtime: its session, and the EEGConfig and metadata read from the graph."""

    def __init__(self, model: str | Path | bytes, device: str = "auto", intra_op_num_threads: int = 1):
        self.session = make_session(model, device, intra_op_num_threads)
        self.source = f"this {type(self).__name__} graph" if isinstance(model, bytes) else str(model)
        self.config, self.meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, self.source)

    @property
    def providers(self) -> list[str]:
        """Execution providers ONNX Runtime really uses for this session, in priority order."""
        return self.session.get_providers()


class OnnxPredictor(OnnxModel):
    """The batch graph (model.onnx): run(x) validates x against the config before ONNX Runtime sees it, so a
    wrong shape gives our UserInputError (naming C, F and the minimum T), not ONNX Runtime's raw message.
    """

    def __init__(self, model: str | Path | bytes, device: str = "auto", intra_op_num_threads: int = 1):
        super().__init__(model, device, intra_op_num_threads)
        check_batch_graph(self.meta, self.source)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """x (B, C, F, T) -> {"logits": (B, K), "probs": (B, K), "frame_logits": (B, T', K)}."""
        x = check_windows(np.asarray(x), self.config, "input", single_ok=False)  # (B, C, F, T) float32
        outputs = self.session.run(None, {"x": np.ascontiguousarray(x)})
        return dict(zip(self.output_names, outputs))

    def predict_logits(self, X: np.ndarray, batch: int = 256) -> np.ndarray:
        """Logits (N, K) for windows X (N, C, F, T), `batch` windows per call."""
        return np.concatenate([self.run(X[i:i + batch])["logits"] for i in range(0, len(X), batch)])

    def __repr__(self) -> str:
        return f"OnnxPredictor(providers={self.providers}, config={self.config})"

