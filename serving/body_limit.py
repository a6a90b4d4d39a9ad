"""ASGI middleware that refuses an oversized POST body from its Content-Length, before a byte of it is read."""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from starlette.responses import JSONResponse

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class BodyLimit:
    """413 for a POST body over `max_bytes`, 411 when its length is not declared (chunked uploads)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            error = self._check(dict(scope["headers"]).get(b"content-length"))
            if error is not None:
                await JSONResponse({"error": error[1]}, status_code=error[0])(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _check(self, length: bytes | None) -> tuple[int, str] | None:
        limit = f"{self.max_bytes / 2**20:g} MiB"
        if length is None:
            return 411, f"send a Content-Length header (bodies of up to {limit} are accepted)"
        if not length.isdigit():
            return 400, f"invalid Content-Length header {length.decode(errors='replace')!r}"
        if int(length) > self.max_bytes:
            return 413, (f"the body is {int(length) / 2**20:.1f} MiB but this server accepts at most {limit} per "
                         f"request: split the batch into smaller requests")
        return None
