"""A WebSocket message over the size limit gets its close frame (1009, message too big), not a reset connection.

uvicorn's WebSocket protocol answers a frame over its `ws_max_size` with a close frame and closes the socket at
once, while the client is still sending the rest of its message: the kernel then resets the connection, and the
client, whose unread data a reset discards, mostly never sees the close frame (review U12). `LingeringClose`
closes the socket only once the client has stopped sending (end of stream) or after `LINGER_S`, reading and
dropping what still arrives. Its limit is EEG2ARM_MAX_BODY_MB, the same as a request body's.

BentoML builds uvicorn's Config itself, with no option for the WebSocket protocol nor its size limit, so
`install()` puts LingeringClose under uvicorn's protocol name "auto", as serving/slow_clients.py does for HTTP.
"""
from __future__ import annotations

from typing import Any

import uvicorn.config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

LINGER_S = 5.0  # at most this long after the close frame, the rest of a too-large message is read and dropped


class LingeringClose(WebSocketsSansIOProtocol):  # type: ignore[misc, valid-type]
    max_bytes = 16 * 2**20

    def __init__(self, config: uvicorn.config.Config, *args: Any, **kwargs: Any) -> None:
        config.ws_max_size = self.max_bytes
        self.lingering = False
        super().__init__(config, *args, **kwargs)

    def data_received(self, data: bytes) -> None:
        if not self.lingering:  # once lingering, the rest of the too-large message is dropped unread
            super().data_received(data)

    def handle_parser_exception(self) -> None:
        """uvicorn's, but the socket stays open for the client to read the close frame (a half-close tells it that
        nothing more comes from here) until it stops sending (then asyncio closes the socket) or LINGER_S pass."""
        assert self.conn.close_sent is not None  # the parser failed the connection: its close frame is queued
        code, reason = self.conn.close_sent.code, self.conn.close_sent.reason
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = self.lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.close_timer = self.loop.call_later(LINGER_S, self.transport.close)  # also keeps uvicorn from closing
        # it when the app returns


def install(max_bytes: int) -> None:
    """Make uvicorn's default WebSocket protocol (the one BentoML's workers use) LingeringClose, `max_bytes` per
    message."""
    LingeringClose.max_bytes = max_bytes
    uvicorn.config.WS_PROTOCOLS["auto"] = f"{__name__}:LingeringClose"
