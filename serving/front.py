"""The first of the service's own layers (added first with `add_asgi_middleware`): every HTTP answer goes out in one
error shape with one log line (serving/errors.py); a request whose Host this server does not answer to is 403; a
path ending in "/" (but "/" itself) is 404, where Starlette would redirect it to the path without the slash at
whatever Host the request named; a WebSocket handshake for a path that serves none is 404 (BentoML's router would
close it, which uvicorn answers 403).

DNS rebinding lets a web page of evil.example, whose name the attacker then points at 127.0.0.1, call this server
from the victim's browser as its own origin (Host: evil.example:3000); the cross-origin check cannot see it.
Allowed: IP addresses (a page's own origin when it names an address: no rebinding), `localhost` (and names under
it), and EEG2ARM_ALLOWED_HOSTS ("*": any). Starlette's TrustedHostMiddleware cannot say "any IP address", which
the probes and the Service of a Kubernetes pod use.
"""
from __future__ import annotations

from typing import Any

from .errors import NOT_FOUND, Answers, ASGIApp, Receive, Send, deny_websocket, send_error
from .settings import Settings, host_allowed

WRONG_HOST = ("this server answers only to IP addresses, localhost and the names in EEG2ARM_ALLOWED_HOSTS: call it "
              "by one of them, or add its name there (docs/serving.md)")


class Front:
    def __init__(self, app: ASGIApp, settings: Settings, websockets: frozenset[str]) -> None:
        self.app = app
        self.hosts = frozenset(settings.allowed_hosts)
        self.websockets = websockets  # the paths of the WebSocket routes

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            send = Answers(send, scope)
        elif scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        if not host_allowed(_host(scope), self.hosts):
            refusal = 403, WRONG_HOST
        elif (scope["path"] != "/" and scope["path"].endswith("/")) or \
                (scope["type"] == "websocket" and scope["path"] not in self.websockets):
            refusal = 404, NOT_FOUND
        else:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await deny_websocket(scope, send, *refusal)
        await send_error(send, *refusal)


def _host(scope: dict[str, Any]) -> str | None:
    """The request's Host header, None when it has none."""
    value = next((value for key, value in scope["headers"] if key == b"host"), None)
    return None if value is None else value.decode("latin-1")
