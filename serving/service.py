"""The eeg2arm HTTP service: POST /predict, POST /predict_npy, GET /metadata (run: `bentoml serve`).

Every request is parsed and validated first, so bad input is a 4xx before anything can fail; then its windows
go to the one ONNX Runtime session, batched with those of concurrent requests. Normalization and softmax are
inside the exported graph: the service has no copy of them.
"""
from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from typing import Annotated, Any

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument
from bentoml.validators import ContentType
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from eeg2arm.errors import UserInputError

from .batching import WindowBatcher
from .body_limit import BodyLimit
from .model_source import ENV_ONNX, resolve_onnx, store_model
from .windows import windows_from_json, windows_from_npy

with bentoml.importing():
    import onnxruntime

    from export.metadata import read_onnx_metadata
    from export.session import make_session

log = logging.getLogger("eeg2arm")

MAX_WINDOWS = 1024  # windows per request
MAX_BODY_BYTES = 32 * 2**20  # a 1024-window JSON body of T=15 is ~16 MiB
MAX_BATCH = 64  # windows per ONNX Runtime call when batching requests
MAX_LATENCY_MS = int(os.environ.get("EEG2ARM_MAX_LATENCY_MS", "1000"))  # batching budget: docs/serving.md
BATCHING = os.environ.get("EEG2ARM_BATCHING", "1") != "0"


async def _metadata(request: Request) -> JSONResponse:
    return JSONResponse(bentoml.get_current_service().metadata())


metadata_app = Starlette(routes=[Route("/metadata", _metadata, methods=["GET"])])


@bentoml.service(name="eeg2arm", traffic={"timeout": 60})
@bentoml.asgi_app(metadata_app, path="/")
class EEG2Arm:
    """Band-power EEG windows in, class probabilities out."""

    onnx_model = store_model()

    def __init__(self) -> None:
        path = resolve_onnx(self.onnx_model)
        self.config, meta = read_onnx_metadata(path)
        self.version = meta["version"]
        if importlib.util.find_spec("nvidia") is not None:  # CUDA/cuDNN installed as pip wheels (the GPU bento)
            onnxruntime.preload_dlls()
        self.session = make_session(path)  # CUDA when present, else CPU with a warning
        self.batcher = WindowBatcher(self._run, MAX_BATCH, MAX_LATENCY_MS)
        self.source = f"{ENV_ONNX}={path}" if self.onnx_model is None else str(self.onnx_model.tag)
        log.info("serving %s on %s (batching %s)", self.source, self.session.get_providers()[0],
                 "on" if BATCHING else "off")

    def _run(self, X: np.ndarray) -> np.ndarray:
        logits, probs = self.session.run(["logits", "probs"], {"x": X})[:2]  # (B, K) each
        return np.stack([logits, probs], axis=1)  # (B, 2, K)

    async def _predict(self, X: np.ndarray, return_logits: bool) -> dict[str, list]:
        if BATCHING and len(X) < MAX_BATCH:
            out = await self.batcher(X)  # (B, 2, K)
        else:  # already a batch: nothing to gain from waiting for others
            out = await asyncio.to_thread(self._run, X)
        logits, probs = out[:, 0], out[:, 1]
        pred = probs.argmax(axis=1)
        answer = {"pred": pred.tolist(), "conf": probs[np.arange(len(pred)), pred].tolist(),
                  "probs": probs.tolist()}
        if return_logits:
            answer["logits"] = logits.tolist()
        return answer

    @bentoml.api
    async def predict(
        self,
        x: Any = Field(description="windows as a nested list (B, C, F, T), or one window (C, F, T)"),
        return_logits: bool = Field(default=False, description="also return the logits"),
    ) -> dict[str, list]:
        """Predict the class of each band-power window: {"pred": [...], "conf": [...], "probs": [[...]]}."""
        try:
            X = windows_from_json(x, self.config, MAX_WINDOWS)
        except UserInputError as e:
            raise InvalidArgument(str(e)) from None
        return await self._predict(X, return_logits)

    @bentoml.api(route="/predict_npy")
    async def predict_npy(
        self, body: Annotated[bytes, ContentType("application/octet-stream")], /, ctx: bentoml.Context
    ) -> dict[str, list]:
        """Same as /predict for a body written by numpy.save (B, C, F, T) or (C, F, T); ?return_logits=true."""
        try:
            X = windows_from_npy(body, self.config, MAX_WINDOWS)
        except UserInputError as e:
            raise InvalidArgument(str(e)) from None
        return await self._predict(X, ctx.request.query_params.get("return_logits", "").lower() == "true")

    def metadata(self) -> dict[str, Any]:
        c = self.config
        return {"config": c.to_dict(), "version": self.version, "n_classes": c.n_classes,
                "class_names": list(c.class_names) if c.class_names else None,
                "input": {"name": "x", "layout": "(B, C, F, T)", "C": c.n_electrodes, "F": c.n_bands,
                          "min_T": c.min_frames, "max_windows_per_request": MAX_WINDOWS,
                          "max_body_bytes": MAX_BODY_BYTES},
                "providers": self.session.get_providers(),
                "model": self.source, "batching": BATCHING}


EEG2Arm.add_asgi_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
