"""The eeg2arm HTTP service: POST /predict, POST /predict_npy, GET /metadata, and streaming sessions
POST /stream/open, /stream/step, /stream/close (run: `bentoml serve`).

Every request is parsed and validated first, so bad input is a 4xx before anything can fail; then its windows
go to the one ONNX Runtime session, batched with those of concurrent requests. Normalization and softmax are
inside the exported graph: the service has no copy of them. Stream sessions run the exported step graph
(model.step.onnx) one pooled frame at a time, each session with its own state (serving/streams.py).
"""
from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from http import HTTPStatus
from typing import Annotated, Any

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException, InvalidArgument, NotFound
from bentoml.validators import ContentType
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from eeg2arm.errors import UserInputError
from eeg2arm.realtime.smoothing import Hysteresis
from eeg2arm.realtime.streamer import StepResult, Streamer

from .batching import WindowBatcher
from .body_limit import BodyLimit
from .model_source import ENV_ONNX, resolve_onnx, store_model
from .streams import StreamNotFound, StreamTable, TooManyStreams
from .windows import frames_from_json, windows_from_json, windows_from_npy

with bentoml.importing():
    import onnxruntime

    from export.metadata import read_onnx_metadata
    from export.session import make_session
    from export.step import step_beside

log = logging.getLogger("eeg2arm")

MAX_WINDOWS = 1024  # windows per request
MAX_BODY_BYTES = 32 * 2**20  # a 1024-window JSON body of T=15 is ~16 MiB
MAX_BATCH = 64  # windows per ONNX Runtime call when batching requests


def env_number(name: str, default: float, kind: type = int) -> float:
    """A positive number from the environment variable `name`, or `default` when it is unset."""
    text = os.environ.get(name, "")
    try:
        value = kind(text) if text else default
    except ValueError:
        value = 0
    if not value > 0:  # also NaN
        raise UserInputError(f"{name}={text!r} is not a positive {kind.__name__}: set it like {name}={default} "
                             f"or unset it (docs/serving.md)")
    return value


MAX_LATENCY_MS = env_number("EEG2ARM_MAX_LATENCY_MS", 1000)  # batching budget: docs/serving.md
BATCHING = os.environ.get("EEG2ARM_BATCHING", "1") != "0"
MAX_STREAMS = env_number("EEG2ARM_MAX_STREAMS", 64)  # open stream sessions per server
STREAM_IDLE_S = env_number("EEG2ARM_STREAM_IDLE_S", 60.0, float)  # a session idle this long is closed
MAX_STREAM_FRAMES = 1024  # frames per /stream/step request
NO_STEP_GRAPH = ("this model was exported without a step graph (model.step.onnx: `eeg2arm export --no-stream`, or "
                 "a model trained with --normalize, cannot stream): export a model that can stream again to use "
                 "/stream; /predict works as before")


def as_json(result: StepResult) -> dict[str, Any]:
    return {"frame": result.frame, "probs": result.probs.tolist(), "pred": result.pred, "decision": result.decision}


class TooManyRequests(BentoMLException):
    """429. BentoML 1.4 sends the message of a 4xx to the client but replaces a 5xx's with a generic one."""

    error_code = HTTPStatus.TOO_MANY_REQUESTS


async def _metadata(request: Request) -> JSONResponse:
    return JSONResponse(bentoml.get_current_service().metadata())


async def _docs(request: Request) -> RedirectResponse:
    return RedirectResponse("/")  # BentoML 1.4 serves its Swagger UI at / (spec: /docs.json) and has no /docs


metadata_app = Starlette(routes=[Route("/metadata", _metadata, methods=["GET"]), Route("/docs", _docs, methods=["GET"])])


# One worker, explicitly (BentoML's default): stream sessions live in the worker process's memory, so a second
# worker would not know the sessions opened on the first.
@bentoml.service(name="eeg2arm", workers=1, traffic={"timeout": 60})
@bentoml.asgi_app(metadata_app, path="/")
class EEG2Arm:
    """Band-power EEG windows in, class probabilities out."""

    onnx_model = store_model()
    if onnx_model is None:  # a bad $EEG2ARM_ONNX stops `bentoml serve` here; in __init__ it would restart workers
        read_onnx_metadata(resolve_onnx(None))

    def __init__(self) -> None:
        path = resolve_onnx(self.onnx_model)
        self.config, meta = read_onnx_metadata(path)
        self.version = meta["version"]
        if importlib.util.find_spec("nvidia") is not None:  # CUDA/cuDNN installed as pip wheels (the GPU bento)
            onnxruntime.preload_dlls()
        self.session = make_session(path)  # CUDA when present, else CPU with a warning
        self.batcher = WindowBatcher(self._run, MAX_BATCH, MAX_LATENCY_MS)
        device = "cpu" if self.session.get_providers()[0] == "CPUExecutionProvider" else "cuda"  # as decided above
        self.step = step_beside(path, device)  # the streaming step graph, if exported; state is per session
        self.streams = StreamTable(lambda hysteresis: Streamer(self.step, hysteresis), MAX_STREAMS, STREAM_IDLE_S)
        self.source = f"{ENV_ONNX}={path}" if self.onnx_model is None else str(self.onnx_model.tag)
        log.info("serving %s on %s (batching %s, streaming %s)", self.source, self.session.get_providers()[0],
                 "on" if BATCHING else "off", "off" if self.step is None else "on")

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

    @bentoml.api(route="/stream/open")
    async def stream_open(
        self,
        enter: float = Field(default=0.7, description="Hysteresis: probability at which a class is entered"),
        exit: float = Field(default=0.5, description="Hysteresis: probability below which it is released"),
        min_frames: int = Field(default=3, description="Hysteresis: pooled frames above `enter` to enter a class"),
    ) -> dict[str, Any]:
        """Open a stream session: {"session": id, "frame_shape": [C, F], "pool": ..., "idle_timeout_s": ...}."""
        if self.step is None:
            raise NotFound(NO_STEP_GRAPH)
        try:
            hysteresis = Hysteresis(enter, exit, min_frames)
        except ValueError as e:
            raise InvalidArgument(f"{e}: choose 0 <= exit <= enter <= 1 and min_frames >= 1") from None
        try:
            session = self.streams.open(hysteresis)
        except TooManyStreams as e:
            raise TooManyRequests(str(e)) from None
        c = self.config
        return {"session": session, "frame_shape": [c.n_electrodes, c.n_bands], "pool": c.cnn_time_pool,
                "idle_timeout_s": STREAM_IDLE_S, "class_names": list(c.class_names) if c.class_names else None}

    @bentoml.api(route="/stream/step")
    async def stream_step(
        self,
        session: str = Field(description="the id /stream/open returned"),
        frames: Any = Field(description="one band-power frame (C, F) or several in time order (C, F, n)"),
    ) -> dict[str, Any]:
        """Feed frames to a session: one result per complete group of `pool` frames, the frames still pending, and
        the session's latest result (the decision in force, also when these frames only filled the buffer).

        A bad frame is a 400 and leaves the session as it was.
        """
        try:
            self.streams.get(session)  # an unknown session is a 404, whatever the frames
            X = frames_from_json(frames, self.config, MAX_STREAM_FRAMES)  # (C, F, n)
            results, pending, latest = await self.streams.push(session, X)
        except UserInputError as e:
            raise InvalidArgument(str(e)) from None
        except StreamNotFound as e:
            raise NotFound(str(e)) from None
        return {"results": [as_json(r) for r in results], "pending": pending,
                "latest": None if latest is None else as_json(latest)}

    @bentoml.api(route="/stream/close")
    async def stream_close(self, session: str = Field(description="the id /stream/open returned")) -> dict[str, Any]:
        """Close a session: {"closed": id, "frames": pooled frames it processed}."""
        try:
            frames = await self.streams.close(session)
        except StreamNotFound as e:
            raise NotFound(str(e)) from None
        return {"closed": session, "frames": frames}

    def metadata(self) -> dict[str, Any]:
        c = self.config
        return {"config": c.to_dict(), "version": self.version, "n_classes": c.n_classes,
                "class_names": list(c.class_names) if c.class_names else None,
                "input": {"name": "x", "layout": "(B, C, F, T)", "C": c.n_electrodes, "F": c.n_bands,
                          "min_T": c.min_frames, "max_windows_per_request": MAX_WINDOWS,
                          "max_body_bytes": MAX_BODY_BYTES},
                "providers": self.session.get_providers(),
                "model": self.source, "batching": BATCHING,
                "streaming": {"available": self.step is not None, "pool": c.cnn_time_pool,
                              "max_sessions": MAX_STREAMS, "idle_timeout_s": STREAM_IDLE_S,
                              "max_frames_per_step": MAX_STREAM_FRAMES}}


EEG2Arm.add_asgi_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
