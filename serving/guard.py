"""ASGI middleware in front of every route (added after serving/front.py): the API token, the cross-site and
content-type checks, and the bounds on request bodies.

Refusals happen here, before BentoML reads or parses a body: a request may send each header these checks read
only once (400), a POST to a JSON route takes no query string (400: it would be ignored); a POST must declare the
content type of its route (415 otherwise: a browser's cross-site form or text/plain POST never reaches a route),
its Content-Length (411) within the limit (413), send its whole body within `body_timeout_s` (408), and a JSON body
may hold at most the numbers and lists its route can use, nested no deeper than its route's bodies
(serving/json_scan.py: 413, 400), so a body of tiny numbers or empty lists cannot fan out into millions of Python
objects.

How many bodies a worker holds at once is bounded in two stages, each EEG2ARM_MAX_INFLIGHT_MB of declared bytes,
first come first served (serving/budget.py), 503 with Retry-After after `body_timeout_s` of waiting:
- `reading`: a body over 1 MiB is counted before a byte of it is read, until it is answered. Bodies of 1 MiB or
  less are read uncounted, so slow senders of small bodies hold nothing that others wait for;
- `working`: every body, whatever its size, is counted from its last byte until it is answered: parsing it and
  running the model are what multiply its size in memory (128 concurrent 1 MB JSON bodies grew a worker by 1 GB).
  A slow sender is not counted here before its body is complete, so it holds up nobody's work.
"""
from __future__ import annotations

import asyncio
import hmac
from collections import Counter
from dataclasses import dataclass
from typing import Any

from eeg2arm.errors import UserInputError

from .budget import BodyBudget
from .errors import ASGIApp, Message, Receive, Send, deny_websocket, send_error
from .json_scan import JsonBound, check_json
from .settings import OPEN_PATHS, MiB, Settings
from .windows import TooLarge

SINGLE_HEADERS = frozenset({b"host", b"origin", b"authorization", b"content-type", b"content-length",
                            b"transfer-encoding"})  # what the checks read; each may come once
UNCOUNTED_WHILE_READ = MiB  # bodies this small are read without counting (hundreds of windows of the demo model)


@dataclass(frozen=True)
class BodyRule:
    content_type: str  # the one media type the route takes
    json: JsonBound | None = None  # how much JSON the route can use; None: not JSON


class Guard:
    """The checks above, in that order, for HTTP and WebSocket scopes; `rules` maps each POST route to its body."""

    def __init__(self, app: ASGIApp, settings: Settings, rules: dict[str, BodyRule]) -> None:
        self.app, self.settings, self.rules = app, settings, rules
        self.token = settings.api_token.encode() if settings.api_token else None
        self.reading = BodyBudget(settings.max_inflight_bytes, uncounted=UNCOUNTED_WHILE_READ)
        self.working = BodyBudget(settings.max_inflight_bytes, uncounted=0)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        refusal = _repeated(scope["headers"]) or self._authorized(scope, headers) or self._same_origin(headers)
        if scope["type"] == "websocket":
            if refusal is not None:
                return await deny_websocket(scope, send, *refusal)
            return await self.app(scope, receive, send)
        rule = self.rules.get(scope["path"]) if scope["method"] == "POST" else None
        if refusal is None and rule is not None:
            refusal = self._declared_body(scope, headers, rule)
        if refusal is not None:
            extra = [(b"www-authenticate", b"Bearer")] if refusal[0] == 401 else []
            return await send_error(send, *refusal, extra=extra)
        if rule is None:  # not a route that takes a body: the router answers (404 or 405 for a wrong method)
            return await self.app(scope, receive, send)
        await self._within_budgets(scope, receive, send, int(headers[b"content-length"]))

    async def _within_budgets(self, scope: dict[str, Any], receive: Receive, send: Send, size: int) -> None:
        """Read the body (counted while it arrives when large), check it, then let the route work on it once its
        size fits in the working budget."""
        wait_s = self.settings.body_timeout_s
        if not await self.reading.acquire(size, wait_s):
            return await self._busy(send)
        try:
            body = await self._read_body(scope, receive, send, size)
            if body is None:
                return
            if not await self.working.acquire(size, wait_s):
                return await self._busy(send)
            try:
                await self.app(scope, _replay(body, receive), send)
            finally:
                self.working.release(size)
        finally:
            self.reading.release(size)

    async def _busy(self, send: Send) -> None:
        await send_error(send, 503, f"the server is busy: the bodies ahead of this one took its "
                                    f"{self.settings.max_inflight_bytes / MiB:g} MiB (EEG2ARM_MAX_INFLIGHT_MB) for "
                                    f"{self.settings.body_timeout_s:g} s; retry in a moment",
                         extra=[(b"retry-after", b"1"), (b"connection", b"close")])

    def _authorized(self, scope: dict[str, Any], headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        if self.token is None or scope["path"] in OPEN_PATHS:
            return None
        # RFC 7235: the scheme is case-insensitive ("bearer" is Bearer), then the credentials after its space(s)
        scheme, _, credentials = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.lstrip(b" "), self.token):
            return None
        return 401, ("missing or wrong API token: send the header 'Authorization: Bearer <token>' with the token "
                     "the server was started with (EEG2ARM_API_TOKEN)")

    @staticmethod
    def _same_origin(headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        """403 for a browser page of another origin (browsers always send Origin; programs usually do not)."""
        origin = headers.get(b"origin")
        if origin is None or origin.split(b"://", 1)[-1] == headers.get(b"host"):
            return None
        return 403, "cross-origin requests are refused: call this server from a program, not from another site's page"

    def _declared_body(self, scope: dict[str, Any], headers: dict[bytes, bytes], rule: BodyRule
                       ) -> tuple[int, str] | None:
        path = scope["path"]
        if rule.json is not None and scope.get("query_string"):  # the route would ignore it silently
            return 400, f"{path} takes no query parameters: every option is a field of its JSON body"
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode(errors="replace")
        if media != rule.content_type:
            return 415, f"{path} takes Content-Type: {rule.content_type}{'' if media else ' (none was sent)'}"
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
        """The whole body within the timeout, checked, or None once an error was sent (or the client went away). Its
        bytes are counted as they arrive: more than `declared` (its Content-Length) is a 413 before any more is
        read."""
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
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        rule = self.rules[scope["path"]]
        try:
            if rule.json is not None:
                check_json(body, rule.json, f"the JSON body of {scope['path']}")
        except UserInputError as e:
            await send_error(send, 413 if isinstance(e, TooLarge) else 400, str(e))
            return None
        return body


def _repeated(headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
    """400 for a request that sends a header these checks read more than once: the checks would read one of the
    values and the route another (a form's Content-Type first, JSON's second, got past the 415 and the JSON scan)."""
    counts = Counter(name.lower() for name, _ in headers)
    twice = sorted(name.decode() for name in SINGLE_HEADERS if counts[name] > 1)
    return None if not twice else (400, f"send each of these headers at most once: {', '.join(twice)}")


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
