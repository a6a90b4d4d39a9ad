"""serving/errors.py on real ASGI messages in the shapes BentoML and Starlette send: every error answer in one shape,
the 500 body the one docs/serving.md promises, one log line per request."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

from serving.errors import NOT_FOUND, SERVER_ERROR, Answers

BENTOML_500 = b'{"error":"An unexpected error has occurred, please check the server log."}'


def answer(status: int, body: bytes, content_type: bytes = b"application/json") -> tuple[list[dict], int]:
    """The messages that leave Answers for one response, and the status it logged."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def respond() -> None:
        answers = Answers(send, {"method": "POST", "path": "/predict"})
        await answers({"type": "http.response.start", "status": status,
                       "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                                   (b"x-kept", b"1")]})
        await answers({"type": "http.response.body", "body": body[:5], "more_body": True})
        await answers({"type": "http.response.body", "body": body[5:]})

    asyncio.run(respond())
    return sent, status


@pytest.mark.parametrize("status, body, content_type, message", [
    (500, BENTOML_500, b"application/json", SERVER_ERROR),  # issue 17: BentoML's wording reached the client
    (500, b"Internal Server Error", b"text/plain", SERVER_ERROR),
    (400, b'{"error":"1 validation error","detail":[{"loc":["x"],"msg":"Field required"}]}', b"application/json",
     "x: Field required"),
    (400, b'[{"error":"x has shape (4, 15)"}]', b"application/json", "x has shape (4, 15)"),
    (404, b"Not Found", b"text/plain", NOT_FOUND),
])
def test_every_error_leaves_in_one_shape(status, body, content_type, message, caplog):
    with caplog.at_level(logging.INFO, logger="eeg2arm"):
        sent, _ = answer(status, body, content_type)
    start, end = sent
    assert start["status"] == status and (b"x-kept", b"1") in start["headers"]
    assert (b"content-type", b"application/json") in start["headers"]
    assert json.loads(end["body"]) == {"error": message}
    assert (b"content-length", str(len(end["body"])).encode()) in start["headers"]
    assert [r.getMessage() for r in caplog.records] == [f"POST /predict -> {status}: {message}"]


def test_a_success_passes_unchanged_and_is_one_line(caplog):
    with caplog.at_level(logging.INFO, logger="eeg2arm"):
        sent, _ = answer(200, b'{"pred": [1]}')
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b'{"pred": [1]}' and len(sent) == 3
    assert len(caplog.records) == 1 and caplog.records[0].getMessage().startswith("POST /predict -> 200 (")
