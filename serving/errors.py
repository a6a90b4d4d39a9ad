"""One error shape and one log line per request.

Every answer with status >= 400, whoever made it (our checks, BentoML, Starlette), reaches the client as
{"error": "<message>"} (the Error schema of /docs.json), at most MAX_MESSAGE characters and never a copy of the
input; a 500 always says SERVER_ERROR, the details staying in the log. `Answers` wraps an ASGI `send` to do that and
to write the request's one log line: `POST /predict -> 200 (2.1 ms)`, or `-> 400: <reason>` for a client error.

BentoML 1.4 sends a 4xx exception's message to the client (a 5xx's it replaces by a generic one), so every refusal a
client can act on is a 4xx: the exceptions below are the statuses BentoML has no class for.
"""
from __future__ import annotations

import json
import logging
import time
from http import HTTPStatus
from typing import Any, Awaitable, Callable

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

log = logging.getLogger("eeg2arm")

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict, Receive, Send], Awaitable[None]]

MAX_MESSAGE = 500  # characters of an error message
SERVER_ERROR = "internal server error: the server log has the details"
NOT_FOUND = "Not Found: the routes are listed in /docs.json"


class PayloadTooLarge(BentoMLException):
    """413: the request is over one of the server's limits (the message names it)."""

    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class Conflict(BentoMLException):
    """409: the route does not work in this server's configuration (HTTP stream sessions with several workers)."""

    error_code = HTTPStatus.CONFLICT


class TooManyRequests(BentoMLException):
    """429: all stream sessions are open."""

    error_code = HTTPStatus.TOO_MANY_REQUESTS


def loggable(text: str, limit: int = 80) -> str:
    """`text` (a request's path, a message) cut to `limit` characters, its control and other unprintable characters
    escaped (\\n, \\x1b, \\u2028): a request cannot write a line of its own into the log."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit])


def error_body(message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": message[:MAX_MESSAGE]}).encode()
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())], body


async def send_error(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
    headers, body = error_body(message)
    await send({"type": "http.response.start", "status": status, "headers": headers + list(extra)})
    await send({"type": "http.response.body", "body": body})


async def deny_websocket(scope: dict[str, Any], send: Send, status: int, message: str) -> None:
    """Refuse a WebSocket handshake with an HTTP status and the error body where the server can (ASGI's denial
    response extension), else with close code 1008 (policy violation); one log line."""
    log.info("WebSocket %s -> %d: %s", loggable(scope["path"]), status, loggable(message, 200))
    if "websocket.http.response" not in scope.get("extensions", {}):
        return await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
    headers, body = error_body(message)
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


def message_of(status: int, body: bytes) -> str:
    """The one-line message of an error body in any of the shapes BentoML and Starlette write."""
    if status == 500:
        return SERVER_ERROR
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode(errors="replace").strip()
        return {404: NOT_FOUND,
                405: "Method Not Allowed: the routes and their methods are listed in /docs.json"}.get(status, text)
    if isinstance(data, list) and data:  # BentoML's [{"error": ...}] for a raised 4xx
        data = data[0]
    if not isinstance(data, dict):
        return str(data)
    detail = data.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):  # pydantic: where and what, no input
        where = ".".join(str(part) for part in detail[0].get("loc", ()))
        what = str(detail[0].get("msg", data.get("error", "")))
        return f"{where}: {what}" if where else what
    return str(data.get("error", detail))


class Answers:
    """Wraps send() for one HTTP request: an answer with status >= 400 gets the body {"error": message}; once the
    answer is sent, one log line says what it was (and why, for an error)."""

    def __init__(self, send: Send, scope: dict[str, Any]) -> None:
        self.send, self.scope = send, scope
        self.started = time.perf_counter()
        self.start: Message | None = None  # an error's start message, held until its body is shaped
        self.chunks: list[bytes] = []
        self.status = 0

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            if self.status >= 400:
                self.start = message
                return
        elif kind == "http.response.body" and self.start is not None:
            self.chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await self._send_error(b"".join(self.chunks))
            return
        await self.send(message)
        if kind == "http.response.body" and not message.get("more_body", False):
            self._log(None)

    async def _send_error(self, raw: bytes) -> None:
        assert self.start is not None
        message = message_of(self.status, raw)[:MAX_MESSAGE]
        headers, body = error_body(message)
        kept = [(k, v) for k, v in self.start.get("headers", []) if k.lower() not in (b"content-type",
                                                                                      b"content-length")]
        await self.send({**self.start, "headers": kept + headers})
        await self.send({"type": "http.response.body", "body": body})
        self._log(message)

    def _log(self, reason: str | None) -> None:
        method, path = self.scope["method"], loggable(self.scope["path"])
        if reason is None:
            log.info("%s %s -> %d (%.1f ms)", method, path, self.status, (time.perf_counter() - self.started) * 1e3)
        else:
            log.info("%s %s -> %d: %s", method, path, self.status, loggable(reason, 200))


class ClientErrorTraceback(logging.Filter):
    """Drops the traceback BentoML logs for an exception it answers with a 4xx (our checks' InvalidArgument and
    the like, pydantic's validation errors): the request's one line from `Answers` says why. Server errors keep
    theirs. Installed on the handlers of BentoML's `bentoml` logger namespace (BentoML's logging docs: "use the
    default Python logging configuration")."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, ValidationError) or (isinstance(exc, BentoMLException) and exc.error_code < 500))

    @classmethod
    def install(cls) -> None:
        log.setLevel(logging.INFO)  # the request lines, beside BentoML's INFO lines
        for handler in logging.getLogger("bentoml").handlers:
            handler.addFilter(cls())
