"""Schemathesis hooks for tests/test_service_schema.py (loaded through SCHEMATHESIS_HOOKS).

/docs.json says all JSON Schema can say about a request; three rules it cannot express are applied here to the
*positive* cases only (the data the schema calls valid), so that schemathesis' positive_data_acceptance check tests
the server, not the limits of JSON Schema. Negative cases are left as generated.
- /predict `x`, /stream/step `frames`: every innermost list has one length (one T for all windows, one n).
- /stream/open: `exit` <= `enter`.
- /predict_npy: the body is a .npy file (the schema can only say "binary"): a real window of zeros.
"""
from __future__ import annotations

import io

import numpy as np
import schemathesis


def _lengths(x) -> list[int]:
    if isinstance(x, list) and x and all(isinstance(v, list) for v in x):
        return [n for v in x for n in _lengths(v)]
    return [len(x)] if isinstance(x, list) else []


def _trimmed(x, n: int):
    if isinstance(x, list) and x and all(isinstance(v, list) for v in x):
        return [_trimmed(v, n) for v in x]
    return x[:n] if isinstance(x, list) else x


def _rectangular(x):
    lengths = _lengths(x)
    return _trimmed(x, min(lengths)) if lengths else x


def _window_shape(case) -> tuple[int, int, int]:
    """(C, F, min T) from /predict's window schema in the document."""
    x = case.operation.schema.raw_schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    window = x["schema"]["properties"]["x"]["anyOf"][1]
    return window["minItems"], window["items"]["minItems"], window["items"]["items"]["minItems"]


@schemathesis.hook
def map_case(ctx, case):
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return case
    path, body = case.operation.path, case.body
    if path == "/predict" and isinstance(body, dict) and "x" in body:
        body["x"] = _rectangular(body["x"])
    elif path == "/stream/step" and isinstance(body, dict) and "frames" in body:
        body["frames"] = _rectangular(body["frames"])
    elif path == "/stream/open" and isinstance(body, dict) and body.get("exit", 0.5) > body.get("enter", 0.7):
        body["enter"], body["exit"] = body.get("exit", 0.5), body.get("enter", 0.7)
    elif path == "/predict_npy":
        buf = io.BytesIO()
        np.save(buf, np.zeros(_window_shape(case), np.float32))
        case.body = buf.getvalue()
    return case
