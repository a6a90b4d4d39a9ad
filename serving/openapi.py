"""The OpenAPI document at /docs.json: BentoML's, made exact for this model and server.

BentoML describes `x` and `frames` as "any" value, the predictions as a dict of lists, and its error responses as
objects with an `error` and a string `detail` for 400/404/500 only. This document gives the real contract: the
shapes the model takes (C, F and the T and window limits of this server, numbers within ±1e15), the predictions
with this model's K and class labels, every status each route can answer with, all with one Error body
{"error": "..."} (what serving/errors.py makes of every error), GET /metadata, the bearer token when one is set,
and the WebSocket protocol in the description (OpenAPI 3.0 has no WebSocket operations).

What JSON Schema cannot say is in the descriptions: all windows of a request share one T, each request holds at
most `max_frames` frames (windows x T), and a session's `exit` is at most its `enter`.
"""
from __future__ import annotations

import copy
from typing import Any

from eeg2arm.config import EEGConfig

from . import stream_ws
from .settings import OPEN_PATHS, Settings
from .windows import MAX_VALUE

ERROR = {"type": "object", "required": ["error"], "additionalProperties": False,
         "properties": {"error": {"type": "string", "maxLength": 500, "description": "what was wrong, how to fix it"}}}
STATUS = {
    400: "Bad Request: the body does not fit the model, a JSON route was given a query string, or a header the "
         "server checks came twice (the message says what and how to fix it)",
    401: "Unauthorized: missing or wrong `Authorization: Bearer <token>` (EEG2ARM_API_TOKEN)",
    403: "Forbidden: a cross-origin browser request, or a Host header this server does not answer to "
         "(EEG2ARM_ALLOWED_HOSTS)",
    404: "Not Found: no such stream session, or the model has no step graph",
    408: "Request Timeout: the body did not arrive within EEG2ARM_BODY_TIMEOUT_S",
    409: "Conflict: HTTP stream sessions need EEG2ARM_WORKERS=1 (use /stream/ws)",
    411: "Length Required: no Content-Length, or a Transfer-Encoding",
    413: "Content Too Large: over a limit of this server (the message names it; GET /metadata lists them)",
    415: "Unsupported Media Type: the route takes another Content-Type",
    429: "Too Many Requests: all stream sessions are open",
    500: "Internal Server Error: always {\"error\": \"internal server error: the server log has the details\"}",
    503: "Service Unavailable: the bodies ahead of this one fill the worker's EEG2ARM_MAX_INFLIGHT_MB for "
         "EEG2ARM_BODY_TIMEOUT_S (Retry-After says when to retry)",
}
BODY_ERRORS = (400, 403, 408, 411, 413, 415, 500, 503)
SESSION_ERRORS = (404, 409)


def _errors(codes: tuple[int, ...]) -> dict[str, Any]:
    return {str(code): {"description": STATUS[code],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for code in codes}


def _array(items: dict[str, Any], low: int, high: int | None = None) -> dict[str, Any]:
    bounds = {"minItems": low} if high is None else {"minItems": low, "maxItems": high}
    return {"type": "array", "items": items, **bounds}


def _shapes(config: EEGConfig, s: Settings) -> tuple[dict, dict]:
    """JSON schemas of `x` (a batch (B, C, F, T) or one window (C, F, T)) and of stream `frames`."""
    C, F = config.n_electrodes, config.n_bands
    number = {"type": "number", "minimum": -MAX_VALUE, "maximum": MAX_VALUE}
    window = _array(_array(_array(number, config.min_frames, s.max_T), F, F), C, C)
    x = {"anyOf": [_array(window, 1, s.max_windows), window],
         "description": f"windows (B, {C}, {F}, T) or one window ({C}, {F}, T): one T for all windows, "
                        f"{config.min_frames} <= T <= {s.max_T}, B <= {s.max_windows}, B x T <= {s.max_frames}"}
    frame = _array(_array(number, F, F), C, C)
    frames = {"anyOf": [frame, _array(_array(_array(number, 1, s.max_stream_frames), F, F), C, C)],
              "description": f"one frame ({C}, {F}) or n frames in time order ({C}, {F}, n), "
                             f"n <= {s.max_stream_frames}"}
    return x, frames


def _prediction(config: EEGConfig) -> dict[str, Any]:
    """The JSON schema of /predict's and /predict_npy's answer: one entry per window, in request order."""
    K = config.n_classes
    number, row = {"type": "number"}, _array({"type": "number"}, K, K)
    return {"type": "object", "required": ["pred", "conf", "probs", "labels"], "additionalProperties": False,
            "properties": {
                "pred": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": K - 1},
                         "description": "the most probable class of each window"},
                "conf": {"type": "array", "items": {**number, "minimum": 0, "maximum": 1},
                         "description": "its probability"},
                "probs": {"type": "array", "items": row, "description": "all K class probabilities"},
                "labels": {"type": "array", "items": {"type": "string", "enum": config.labels},
                           "description": "the name of each window's class (`pred`): the model's class_names, or "
                                          "the class index as a string when it has none"},
                "logits": {"type": "array", "items": row, "description": "only with return_logits"}}}


METADATA = {"type": "object", "required": ["config", "version", "n_classes", "labels", "model", "limits"],
            "properties": {"model": {"type": "object", "required": ["name", "version", "sha256", "source"],
                                     "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                                    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                                    "source": {"type": "string", "enum": ["store", "file"]}},
                                     "description": "the model's name and version in the BentoML store (for a "
                                                    "file: its name and export id) and its content's SHA-256"},
                           "labels": {"type": "array", "items": {"type": "string"}}}}


def document(spec: dict[str, Any], config: EEGConfig, settings: Settings) -> dict[str, Any]:
    """BentoML's generated `spec` (a dict) made exact for `config` and `settings`."""
    spec = copy.deepcopy(spec)
    x, frames = _shapes(config, settings)
    schemas = spec["components"]["schemas"]
    for name in ("InvalidArgument", "NotFound", "InternalServerError", "TaskStatusResponse"):
        schemas.pop(name, None)
    schemas["Error"] = ERROR
    bodies = {"/predict": ("predict__Input", {"x": x}), "/stream/step": ("stream_step__Input", {"frames": frames})}
    for path, (name, fields) in bodies.items():
        schemas[name]["properties"].update(fields)
        spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"] = schemas[name]
    spec["paths"]["/predict_npy"]["post"]["parameters"] = [{
        "name": "return_logits", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
        "description": "also return the logits (true or false; any other parameter or value is a 400)"}]
    spec["paths"]["/metadata"] = {"get": {
        "description": "The model (name, version, content hash) and its config, class labels, the input spec, the "
                       "feature `recipe` (how raw EEG becomes its frames), every request limit (`limits`), "
                       "`workers`, the ONNX Runtime providers, streaming settings.", "tags": ["Service APIs"],
        "responses": {"200": {"description": "Successful Response",
                              "content": {"application/json": {"schema": METADATA}}}}}}
    for path in ("/predict", "/predict_npy"):
        spec["paths"][path]["post"]["responses"] = {200: {"description": "Successful Response", "content": {
            "application/json": {"schema": _prediction(config)}}}}
    token = settings.api_token is not None
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            codes = BODY_ERRORS + (SESSION_ERRORS if path.startswith("/stream/") else ()) if method == "post" \
                else (400, 403)  # 400: a repeated header
            codes += (429,) if path == "/stream/open" else ()
            codes += (401,) if token and path not in OPEN_PATHS else ()
            ok = {"200": answer for code, answer in operation["responses"].items() if str(code) == "200"}
            operation["responses"] = {**ok, **_errors(tuple(sorted(codes)))}
            if method == "post":
                operation["requestBody"]["required"] = True
            if token and path in OPEN_PATHS:
                operation["security"] = []
    if token:
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        spec["security"] = [{"bearer": []}]
    spec["info"]["description"] = (
        "Band-power EEG windows in, class probabilities out (eeg2arm). Every error is {\"error\": \"...\"}. "
        f"Limits: GET /metadata. Streaming over a WebSocket, GET /stream/ws:\n\n{stream_ws.__doc__}")
    return spec
