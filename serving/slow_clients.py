"""Close connections whose request headers do not arrive in time (a "slowloris" otherwise holds them forever).

uvicorn times out idle keep-alive connections, but not a connection that sends its headers slowly or never
finishes them: nothing at the ASGI level can see such a connection, since the app is called only once the headers
are complete. BentoML builds uvicorn's Config itself, with no way to pass a protocol class, so `install()` puts
HeaderDeadline under uvicorn's protocol name "auto", which that Config resolves when the worker starts serving
(after it imported this service). A slow *body* is cut off by serving/guard.py (408).
"""
from __future__ import annotations

import asyncio

import uvicorn.config
from uvicorn.protocols.http.auto import AutoHTTPProtocol


class HeaderDeadline(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol with a deadline for each request's headers, counted from its first byte (or from
    the connection, for the first request)."""

    timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _waiting_for_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _watch(self) -> None:
        if not self._waiting_for_headers():
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
        elif self._deadline is None:
            self._deadline = self.loop.call_later(self.timeout_s, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        upgraded = self.transport.get_protocol() is not self  # now a WebSocket: its own idle rules apply
        if not upgraded and self._waiting_for_headers() and not self.transport.is_closing():
            self.transport.close()


def install(timeout_s: float) -> None:
    """Make uvicorn's default HTTP protocol (the one BentoML's workers use) HeaderDeadline with `timeout_s`."""
    HeaderDeadline.timeout_s = timeout_s
    uvicorn.config.HTTP_PROTOCOLS["auto"] = f"{__name__}:HeaderDeadline"
