"""ASGI middleware in front of every route: the API token, cross-site and content-type checks, body limits and
timeouts, and one error shape for every 4xx/5xx answer, whoever made it (BentoML, Starlette or us).

Refusals happen here, before BentoML reads or parses a body: a POST must declare the content type of its route
(415 otherwise: a browser's cross-site form or text/plain POST never reaches a route), its Content-Length (411)
within the limit (413), send its whole body within `body_timeout_s` (408), and a JSON body may hold at most the
numbers and lists its route can use, nested no deeper than its route's bodies (serving/json_scan.py: 413, 400), so
a body of tiny numbers or empty lists cannot fan out into millions of Python objects. Every error answer becomes
{"error": "<message>"} (the Error schema of /docs.json), written as one log line, BentoML's traceback and access
line for it dropped (OneLinePerClientError).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from eeg2arm.errors import UserInputError

from .budget import BodyBudget
from .json_scan import JsonBound, check_json
from .settings import OPEN_PATHS, MiB, Settings
from .windows import TooLarge

log = logging.getLogger("eeg2arm")

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict, Receive, Send], Awaitable[None]]

MAX_MESSAGE = 500  # characters of an error message: never a copy of a large input


@dataclass(frozen=True)
class BodyRule:
    content_type: str  # the one media type the route takes
    json: JsonBound | None = None  # how much JSON the route can use; None: not JSON


def loggable(text: str, limit: int = 80) -> str:
    """`text` (a request's path, a message) cut to `limit` characters, its control and other unprintable characters
    escaped (\\n, \\x1b, \\u2028): a request cannot write a line of its own into the log."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit])


def error_body(status: int, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": message[:MAX_MESSAGE]}).encode()
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())], body


async def send_error(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
    headers, body = error_body(status, message)
    await send({"type": "http.response.start", "status": status, "headers": headers + list(extra)})
    await send({"type": "http.response.body", "body": body})


def message_of(status: int, body: bytes) -> str:
    """The one-line message of an error body in any of the shapes BentoML and Starlette write."""
    if status >= 500:
        return "internal server error: the server log has the details"
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode(errors="replace").strip()
        return {404: "Not Found: the routes are listed in /docs.json",
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


class Guard:
    """The checks above, in that order, for HTTP and WebSocket scopes; `rules` maps each POST route to its body."""

    def __init__(self, app: ASGIApp, settings: Settings, rules: dict[str, BodyRule]) -> None:
        self.app, self.settings, self.rules = app, settings, rules
        self.token = settings.api_token.encode() if settings.api_token else None
        self.budget = BodyBudget(settings.max_inflight_bytes)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            refusal = self._authorized(scope) or self._same_origin(scope)
            if refusal is not None:
                return await deny_websocket(scope, send, *refusal)
            return await self.app(scope, receive, send)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = ErrorShape(send, scope)
        refusal = self._authorized(scope) or self._same_origin(scope)
        if refusal is None and scope["method"] == "POST":
            refusal = self._declared_body(scope)
        if refusal is not None:
            extra = [(b"www-authenticate", b"Bearer")] if refusal[0] == 401 else []
            return await send_error(send, *refusal, extra=extra)
        if scope["method"] == "POST" and scope["path"] in self.rules:
            return await self._within_budget(scope, receive, send)
        await self.app(scope, receive, send)

    async def _within_budget(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """Read the body and let the route work on it once its declared size fits in the worker's budget
        (serving/budget.py), else 503."""
        size = int(dict(scope["headers"])[b"content-length"])  # checked by _declared_body
        wait_s = self.settings.body_timeout_s
        if not await self.budget.acquire(size, wait_s):
            return await send_error(send, 503, f"the server is busy: the bodies ahead of this one took its "
                                               f"{self.budget.capacity / MiB:g} MiB (EEG2ARM_MAX_INFLIGHT_MB) for "
                                               f"{wait_s:g} s; retry in a moment",
                                    extra=[(b"retry-after", b"1"), (b"connection", b"close")])
        try:
            body = await self._read_body(scope, receive, send, size)
            if body is not None:
                await self.app(scope, _replay(body, receive), send)
        finally:
            self.budget.release(size)

    def _authorized(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        if self.token is None or scope["path"] in OPEN_PATHS:
            return None
        # RFC 7235: the scheme is case-insensitive ("bearer" is Bearer), then the credentials after its space(s)
        scheme, _, credentials = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.lstrip(b" "), self.token):
            return None
        return 401, ("missing or wrong API token: send the header 'Authorization: Bearer <token>' with the token "
                     "the server was started with (EEG2ARM_API_TOKEN)")

    @staticmethod
    def _same_origin(scope: dict[str, Any]) -> tuple[int, str] | None:
        """403 for a browser page of another origin (browsers always send Origin; programs usually do not)."""
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        if origin is None or origin.split(b"://", 1)[-1] == headers.get(b"host"):
            return None
        return 403, "cross-origin requests are refused: call this server from a program, not from another site's page"

    def _declared_body(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        rule = self.rules.get(scope["path"])
        if rule is None:
            return None  # not a route that takes a body: the router answers 404/405
        headers = dict(scope["headers"])
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode(errors="replace")
        if media != rule.content_type:
            return 415, (f"{scope['path']} takes Content-Type: {rule.content_type}"
                         f"{'' if media else ' (none was sent)'}")
        length = headers.get(b"content-length")
        limit = f"{self.settings.max_body_bytes / MiB:g} MiB"
        if length is None or b"transfer-encoding" in headers:  # a chunked body's size is known only once it is read
            return 411, (f"send the body with a Content-Length header and no Transfer-Encoding (bodies of up to "
                         f"{limit} are accepted)")
        if not length.isdigit():
            return 400, "invalid Content-Length header"
        if int(length) > self.settings.max_body_bytes:
            return 413, (f"the body is {int(length) / MiB:.1f} MiB but this server accepts at most {limit} per "
                         f"request (EEG2ARM_MAX_BODY_MB): split the batch into smaller requests")
        return None

    async def _read_body(self, scope: dict[str, Any], receive: Receive, send: Send, declared: int) -> bytes | None:
        """The whole body within the timeout, or None once an error was sent (or the client went away). Its bytes
        are counted as they arrive: more than `declared` (its Content-Length) is a 413 before any more is read."""
        chunks, received = [], 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.body_timeout_s
        try:
            while True:
                message = await asyncio.wait_for(receive(), deadline - loop.time())
                if message["type"] == "http.disconnect":
                    return None
                chunks.append(message.get("body", b""))
                received += len(chunks[-1])
                if received > declared:
                    await send_error(send, 413, "the body is longer than its Content-Length",
                                     extra=[(b"connection", b"close")])
                    return None
                if not message.get("more_body", False):
                    break
        except asyncio.TimeoutError:
            await send_error(send, 408, f"the request body did not arrive within {self.settings.body_timeout_s:g} s "
                                        f"(EEG2ARM_BODY_TIMEOUT_S)", extra=[(b"connection", b"close")])
            return None
        body = b"".join(chunks)
        rule = self.rules[scope["path"]]
        try:
            if rule.json is not None:
                check_json(body, rule.json, f"the JSON body of {scope['path']}")
        except UserInputError as e:
            await send_error(send, 413 if isinstance(e, TooLarge) else 400, str(e))
            return None
        return body


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that gives the already read body once, then whatever the connection says next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class ErrorShape:
    """Wraps send(): an answer with status >= 400 gets the body {"error": message}; one log line says why."""

    def __init__(self, send: Send, scope: dict[str, Any]) -> None:
        self.send, self.scope = send, scope
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            return await self.send(message)
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        status = self.start["status"]
        raw = b"".join(self.chunks)
        if raw.startswith(b'{"error"') and raw.endswith(b"}") and b'"detail"' not in raw:
            text = json.loads(raw)["error"]  # already ours
        else:
            text = message_of(status, raw)
        headers, body = error_body(status, text)
        kept = [(k, v) for k, v in self.start.get("headers", []) if k.lower() not in (b"content-type",
                                                                                      b"content-length")]
        log.info("%s %s -> %d: %s", self.scope["method"], loggable(self.scope["path"]), status, loggable(text, 200))
        await self.send({**self.start, "headers": kept + headers})
        await self.send({"type": "http.response.body", "body": body})


async def deny_websocket(scope: dict[str, Any], send: Send, status: int, message: str) -> None:
    """Refuse a WebSocket handshake with an HTTP status and the error body where the server can (ASGI's denial
    response extension), else with close code 1008 (policy violation)."""
    log.info("%d WebSocket %s: %s", status, loggable(scope["path"]), loggable(message, 200))
    if "websocket.http.response" not in scope.get("extensions", {}):
        return await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
    headers, body = error_body(status, message)
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


class OneLinePerClientError(logging.Filter):
    """ErrorShape writes each client error as one line with its reason; this filter drops BentoML's other records
    of it: the 'Exception on <path>' traceback (logger bentoml._internal.server.http_app) and the access line
    (bentoml.access). Server errors keep both."""

    def filter(self, record: logging.LogRecord) -> bool:
        from bentoml.exceptions import BentoMLException
        from pydantic import ValidationError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError) or (isinstance(exc, BentoMLException) and exc.error_code < 500):
            return False
        args = record.args if isinstance(record.args, tuple) else ()
        return not (len(args) == 4 and str(args[2]).startswith("status=4"))  # the access line of a 4xx

    @classmethod
    def install(cls) -> None:
        logging.getLogger("eeg2arm").setLevel(logging.INFO)  # the reasons, beside BentoML's INFO lines
        for name in ("bentoml._internal.server.http_app", "bentoml.access"):
            logging.getLogger(name).addFilter(cls())
