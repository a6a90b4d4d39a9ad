"""The eeg2arm HTTP service: POST /predict, POST /predict_npy, GET /metadata, streaming over a WebSocket
(/stream/ws, one session per connection) and over HTTP sessions (POST /stream/open, /stream/step, /stream/close;
single worker). Run: `bentoml serve` (127.0.0.1:3000 unless --host/--port say otherwise).

This module wires the pieces, and is the only one that does; the others import one way (docs/serving.md draws
the layers). Every request passes serving/front.py (one error shape and log line, Host allow-list) and
serving/guard.py (token, content type, body limits, timeouts and budgets), both added with BentoML's
`add_asgi_middleware`; it is parsed and validated within the limits of serving/settings.py, and only then reaches
the model: its windows go to the one ONNX Runtime session, batched with those of concurrent requests, in a worker
thread. Normalization and softmax are inside the exported graph: the service has no copy of them. Stream sessions
run the exported step graph (model.step.onnx) one pooled frame at a time, each session with its own state
(serving/streams.py). What an in-process server cannot do (a deadline for slow request headers, keeping unknown
paths out of BentoML's metrics) is the proxy's in front of it: deploy/k8s/nginx.conf.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
from functools import cache
from typing import Annotated, Any, Iterator

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument, NotFound
from bentoml.validators import ContentType
from pydantic import Field

from eeg2arm.errors import UserInputError
from eeg2arm.realtime.smoothing import Hysteresis
from eeg2arm.realtime.streamer import Streamer

from .batching import WindowBatcher
from .errors import ClientErrorTraceback, Conflict, PayloadTooLarge, TooManyRequests
from .front import Front
from .guard import BodyRule, Guard
from .json_scan import JsonBound, frames_bound, windows_bound
from .model_source import check_model, model_identity, resolve_onnx, store_model
from .openapi import document
from .routes import WEBSOCKETS, make_routes
from .settings import Settings
from .startup import one_line_errors, warn_if_exposed
from .streams import NO_STEP_GRAPH, StreamNotFound, StreamTable, TooManyStreams, as_json
from .windows import (TooLarge, check_outputs, frames_from_json, return_logits_query, windows_from_json,
                      windows_from_npy)

with bentoml.importing():
    import onnxruntime

    from export.metadata import read_onnx_metadata
    from export.session import make_session
    from export.step import step_beside

log = logging.getLogger("eeg2arm")
JSON = "application/json"
# The predict routes answer with their JSON already written: for a declared dict, BentoML 1.4 rebuilds the return
# type's JSON schema on every answer to learn its media type (a fifth of an empty service's time per request).
# Clients see the same JSON; /docs.json describes it (serving/openapi.py).
Answer = Annotated[bytes, ContentType(JSON)]
with one_line_errors():  # a bad setting or model: one line `Error: ...`, exit 1, no traceback
    SETTINGS = Settings.from_env()
    warn_if_exposed(SETTINGS)
    ONNX_MODEL = store_model()
    # A model that cannot be served stops `bentoml serve` here, in its first process, with the reason; found in a
    # worker's __init__ it would restart that worker forever.
    MODEL_CONFIG = check_model(resolve_onnx(ONNX_MODEL))
SESSION_ID = Field(min_length=43, max_length=43, pattern=r"^[A-Za-z0-9_-]+$",
                   description="the id /stream/open returned (the session's capability: keep it to yourself)")
SINGLE_WORKER = ("HTTP stream sessions live in one worker's memory and this server runs {workers} workers "
                 "(EEG2ARM_WORKERS): stream over the WebSocket /stream/ws instead (one session per connection), "
                 "or serve with EEG2ARM_WORKERS=1")


@cache
def openapi_document() -> dict[str, Any]:
    return document(EEG2Arm.openapi_spec.asdict(), MODEL_CONFIG, SETTINGS)


ROUTES = make_routes(metadata=lambda: bentoml.get_current_service().metadata(), openapi=openapi_document)


@bentoml.service(name="eeg2arm", workers=SETTINGS.workers, traffic={"timeout": 60},
                 http={"host": "127.0.0.1", "port": 3000},  # a wider bind is asked for: --host 0.0.0.0
                 logging={"access": {"enabled": False}})  # serving/front.py writes one line per request instead
@bentoml.asgi_app(ROUTES, path="/")
class EEG2Arm:
    """Band-power EEG windows in, class probabilities out."""

    onnx_model = ONNX_MODEL  # declared here so that `bentoml build` packs it

    def __init__(self) -> None:
        path = resolve_onnx(self.onnx_model)
        self.config, meta = read_onnx_metadata(path)
        self.version = meta["version"]
        self.labels = self.config.labels  # class k's name
        self.model = model_identity(path, self.onnx_model, meta.get("export_id", ""))
        ClientErrorTraceback.install()
        if importlib.util.find_spec("nvidia") is not None:  # CUDA/cuDNN installed as pip wheels (the GPU bento)
            onnxruntime.preload_dlls()
        self.session = make_session(path)  # CUDA when present, else CPU with a warning
        self.batcher = WindowBatcher(self._run, SETTINGS.max_frames)
        device = "cpu" if self.session.get_providers()[0] == "CPUExecutionProvider" else "cuda"  # as decided above
        self.step = step_beside(path, device)  # the streaming step graph, if exported; state is per session
        self.streams = StreamTable(lambda h: Streamer(self.step, h), SETTINGS.max_streams, SETTINGS.stream_idle_s)
        self.settings = SETTINGS
        log.info("serving %s %s (sha256 %s) on %s (batching %s, streaming %s, %d worker(s), API token %s)",
                 self.model["name"], self.model["version"], self.model["sha256"][:12], self.session.get_providers()[0],
                 "on" if SETTINGS.batching else "off", "off" if self.step is None else "on", SETTINGS.workers,
                 "on" if SETTINGS.api_token else "off")

    def _run(self, X: np.ndarray) -> np.ndarray:
        logits, probs = self.session.run(["logits", "probs"], {"x": X})[:2]  # (B, K) each
        return np.stack([logits, probs], axis=1)  # (B, 2, K)

    async def _predict(self, X: np.ndarray, return_logits: bool) -> Answer:
        out = await (self.batcher(X) if SETTINGS.batching  # (B, 2, K), computed in a worker thread
                     else asyncio.get_running_loop().run_in_executor(None, self._run, X))
        with client_errors():
            check_outputs(out, X)
        logits, probs = out[:, 0], out[:, 1]
        pred = probs.argmax(axis=1).tolist()
        answer = {"pred": pred, "conf": probs[np.arange(len(pred)), pred].tolist(), "probs": probs.tolist(),
                  "labels": [self.labels[k] for k in pred]}
        if return_logits:
            answer["logits"] = logits.tolist()
        return json.dumps(answer, allow_nan=False).encode()

    @bentoml.api
    async def predict(
        self,
        x: Any = Field(description="windows as a nested list (B, C, F, T), or one window (C, F, T)"),
        return_logits: bool = Field(default=False, strict=True, description="also return the logits"),
    ) -> Answer:
        """Predict the class of each band-power window: {"pred": [...], "conf": [...], "probs": [[...]],
        "labels": [...]}."""
        with client_errors():
            X = windows_from_json(x, self.config, SETTINGS)
        return await self._predict(X, return_logits)

    @bentoml.api(route="/predict_npy")
    async def predict_npy(
        self, body: Annotated[bytes, ContentType("application/octet-stream")], /, ctx: bentoml.Context
    ) -> Answer:
        """Same as /predict for a body written by numpy.save (B, C, F, T) or (C, F, T); ?return_logits=true|false."""
        with client_errors():
            return_logits = return_logits_query(ctx.request.query_params.multi_items())
            X = windows_from_npy(body, self.config, SETTINGS)
        return await self._predict(X, return_logits)

    @bentoml.api(route="/stream/open")
    async def stream_open(
        self,
        enter: float = Field(default=0.7, ge=0, le=1, strict=True,
                             description="Hysteresis: probability at which a class is entered"),
        exit: float = Field(default=0.5, ge=0, le=1, strict=True,
                            description="Hysteresis: probability below which it is released (<= enter)"),
        min_frames: int = Field(default=3, ge=1, strict=True,
                                description="Hysteresis: pooled frames above `enter` to enter a class"),
    ) -> dict[str, Any]:
        """Open a stream session: {"session": id, "frame_shape": [C, F], "pool": ..., "idle_timeout_s": ...}."""
        self._http_sessions_usable()
        with client_errors():
            session = self.streams.open(Hysteresis(enter, exit, min_frames))
        return {"session": session, **self.stream_info()}

    @bentoml.api(route="/stream/step")
    async def stream_step(
        self,
        session: str = SESSION_ID,
        frames: Any = Field(description="one band-power frame (C, F) or several in time order (C, F, n)"),
    ) -> dict[str, Any]:
        """Feed frames to a session: one result per complete group of `pool` frames, the frames still pending, and
        the session's latest result (the decision in force, also when these frames only filled the buffer).

        A bad frame is a 400 and leaves the session as it was.
        """
        self._http_sessions_usable()
        with client_errors():
            self.streams.get(session)  # an unknown session is a 404, whatever the frames
            X = frames_from_json(frames, self.config, SETTINGS.max_stream_frames)  # (C, F, n)
            results, pending, latest = await self.streams.push(session, X)
        return {"results": [as_json(r) for r in results], "pending": pending,
                "latest": None if latest is None else as_json(latest)}

    @bentoml.api(route="/stream/close")
    async def stream_close(self, session: str = SESSION_ID) -> dict[str, Any]:
        """Close a session: {"closed": true, "frames": pooled frames it processed}."""
        self._http_sessions_usable()
        with client_errors():
            frames = await self.streams.close(session)
        return {"closed": True, "frames": frames}

    def _http_sessions_usable(self) -> None:
        if self.step is None:
            raise NotFound(NO_STEP_GRAPH)
        if SETTINGS.workers > 1:
            raise Conflict(SINGLE_WORKER.format(workers=SETTINGS.workers))

    def stream_info(self) -> dict[str, Any]:
        c = self.config
        return {"frame_shape": [c.n_electrodes, c.n_bands], "pool": c.cnn_time_pool,
                "idle_timeout_s": SETTINGS.stream_idle_s,
                "class_names": list(c.class_names) if c.class_names else None}

    def metadata(self) -> dict[str, Any]:
        c = self.config
        return {"config": c.to_dict(), "version": self.version, "n_classes": c.n_classes,
                "class_names": list(c.class_names) if c.class_names else None, "labels": self.labels,
                "input": {"name": "x", "layout": "(B, C, F, T)", "C": c.n_electrodes, "F": c.n_bands,
                          "min_T": c.min_frames, "max_T": SETTINGS.max_T},
                "recipe": c.recipe(), "limits": SETTINGS.limits(), "workers": SETTINGS.workers,
                "providers": self.session.get_providers(), "model": self.model, "batching": SETTINGS.batching,
                "auth": "bearer" if SETTINGS.api_token else None,
                "streaming": {"available": self.step is not None, "pool": c.cnn_time_pool,
                              "websocket": "/stream/ws", "http_sessions": SETTINGS.workers == 1,
                              "max_sessions": SETTINGS.max_streams, "idle_timeout_s": SETTINGS.stream_idle_s,
                              "max_frames_per_step": SETTINGS.max_stream_frames}}


@contextlib.contextmanager
def client_errors() -> Iterator[None]:
    """Our exceptions as BentoML's 4xx ones: the message goes to the client (serving/errors.py shapes it)."""
    try:
        yield
    except TooLarge as e:
        raise PayloadTooLarge(str(e)) from None
    except UserInputError as e:
        raise InvalidArgument(str(e)) from None
    except StreamNotFound as e:
        raise NotFound(str(e)) from None
    except TooManyStreams as e:
        raise TooManyRequests(str(e)) from None


# BentoML puts its own middleware (metrics, tracing, timeout) outside these; of ours, the first added is outermost.
EEG2Arm.add_asgi_middleware(Front, settings=SETTINGS, websockets=WEBSOCKETS)
EEG2Arm.add_asgi_middleware(Guard, settings=SETTINGS, rules={
    "/predict": BodyRule(JSON, windows_bound(SETTINGS, MODEL_CONFIG)),
    "/predict_npy": BodyRule("application/octet-stream"),
    "/stream/open": BodyRule(JSON, JsonBound(64, 64, "a few settings", "send only enter, exit and min_frames")),
    "/stream/step": BodyRule(JSON, frames_bound(SETTINGS.max_stream_frames, MODEL_CONFIG, "send the frames in parts")),
    "/stream/close": BodyRule(JSON, JsonBound(64, 64, "one session id", "send only the session id")),
})
