"""The outermost layer of the server, in front of BentoML's own middleware (metrics, tracing, access log) and of
serving/guard.py: it refuses what must never reach them.

- A Host this server does not answer to: 403. DNS rebinding lets a web page of evil.example, whose name the
  attacker then points at 127.0.0.1, call this server from the victim's browser as its own origin (Host:
  evil.example:3000); the cross-origin check cannot see it. Allowed: IP addresses (a page's own origin when it
  names an address: no rebinding), `localhost` (and names under it), and EEG2ARM_ALLOWED_HOSTS ("*": any).
- A path no route serves: 404 here, before BentoML's metrics would make it a Prometheus label (each distinct path
  a new time series kept for good: 5000 random paths grew /metrics from 55 KB to 24 MB), before BentoML's access
  log and before Starlette would redirect /metadata/ to http://<Host>/metadata.
- The WebSocket route asked for without the upgrade: 426.

The worker's ASGI app is what Service.to_asgi() returns; FrontedService, the service class the service is made
with (`bentoml.service(service_class=...)`), wraps it.
"""
from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Any

import bentoml
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles

from .guard import ASGIApp, Receive, Send, deny_websocket, loggable, send_error
from .settings import Settings

log = logging.getLogger("eeg2arm")

NOT_FOUND = "Not Found: the routes are listed in /docs.json"
WRONG_HOST = ("this server answers only to IP addresses, localhost and the names in EEG2ARM_ALLOWED_HOSTS: call it "
              "by one of them, or add its name there (docs/serving.md)")


def host_allowed(host: bytes | None, names: frozenset[str]) -> bool:
    """Whether a request's Host header (name or address, maybe with a port) is one this server answers to."""
    if host is None:  # HTTP/1.0 may omit it; browsers never do
        return True
    text = host.decode("latin-1").strip().lower()
    name = text[1:text.find("]")] if text.startswith("[") else text.rsplit(":", 1)[0]  # [::1]:3000, host:3000
    name = name.rstrip(".")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return "*" in names or name in names or name == "localhost" or name.endswith(".localhost")


class Front:
    """The checks above, for HTTP and WebSocket scopes, around the worker's Starlette app."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app: ASGIApp = app
        self.routes = app.router.routes
        self.hosts = frozenset(settings.allowed_hosts)
        self.static_files = {f"{route.path}/{file.relative_to(folder).as_posix()}"
                             for route in self.routes if isinstance(route, Mount) and isinstance(route.app, StaticFiles)
                             for folder in map(Path, route.app.all_directories) for file in folder.rglob("*")
                             if file.is_file()}

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if not host_allowed(dict(scope["headers"]).get(b"host"), self.hosts):
            refusal = 403, WRONG_HOST
        elif self._served(scope):
            return await self.app(scope, receive, send)
        elif scope["type"] == "http" and self._served({**scope, "type": "websocket"}):
            refusal = 426, f"{scope['path']} is a WebSocket: connect with ws:// (or wss://) and the Upgrade header"
        else:
            refusal = 404, NOT_FOUND
        if scope["type"] == "websocket":
            return await deny_websocket(scope, send, *refusal)
        log.info("%s %s -> %d: %s", scope["method"], loggable(scope["path"]), refusal[0], refusal[1])
        extra = [(b"upgrade", b"websocket"), (b"connection", b"upgrade")] if refusal[0] == 426 else []
        await send_error(send, *refusal, extra=extra)

    def _served(self, scope: dict[str, Any]) -> bool:
        """Whether a route serves this path (for another method, too: that is a 405, with a known path)."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return not isinstance(route.app, StaticFiles) or scope["path"] in self.static_files
        return False


class FrontedService(bentoml.Service):
    """A BentoML service whose ASGI app has the Front before everything else."""

    def to_asgi(self, is_main: bool = True) -> ASGIApp:
        from .service import SETTINGS  # the service module makes its service with this class

        return Front(super().to_asgi(is_main), SETTINGS)
