"""Streaming over a WebSocket: /stream/ws, one stream session per connection (docs/serving.md, "Streaming").

    ws://host:3000/stream/ws?enter=0.7&exit=0.5&min_frames=3     (Authorization: Bearer <token> when one is set)
    <- {"session": "open", "frame_shape": [C, F], "pool": 2, "idle_timeout_s": 60, ...}
    -> frames (C, F) or (C, F, n): a binary message written by numpy.save, or text {"frames": nested list}
    <- {"results": [one per completed pooled frame], "pending": n, "latest": {...} or null}   (one reply per message)
    <- {"error": "...", "status": 400}   for a bad message; the session goes on unchanged

The session lives with the connection, so it is on the worker that accepted it whatever the number of workers, and
it ends when the connection does; a connection silent for the idle timeout is closed (code 4408), and one that sends
a message over the size limit (EEG2ARM_MAX_BODY_MB, at most 8 MiB) with code 1009 (message too big).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import bentoml
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from eeg2arm.errors import UserInputError
from eeg2arm.realtime.smoothing import Hysteresis

from .errors import log, loggable
from .json_scan import check_json, frames_bound
from .streams import NO_STEP_GRAPH, StreamNotFound, TooManyStreams, as_json
from .windows import TooLarge, frames_from_json, frames_from_npy

UNCHANGED = "the stream is unchanged"
IDLE_CLOSE = 4408  # application close codes are 4000-4999: "4" + HTTP's 408 Request Timeout
TOO_BIG = 1009  # RFC 6455: a message too big to process


async def refuse(ws: WebSocket, status: int, message: str) -> None:
    """Refuse the handshake with an HTTP status and the error body, or close code 1008 where the server cannot."""
    log.info("WebSocket %s -> %d: %s", loggable(ws.scope["path"]), status, loggable(message, 200))
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse({"error": message}, status_code=status))
    else:
        await ws.close(1008, message[:120])


async def stream_ws(ws: WebSocket) -> None:
    service = bentoml.get_current_service()
    if service.step is None:
        return await refuse(ws, 404, NO_STEP_GRAPH)
    q = ws.query_params
    try:
        smoothing = Hysteresis(float(q.get("enter", 0.7)), float(q.get("exit", 0.5)), int(q.get("min_frames", 3)))
        session = service.streams.open(smoothing, owned=True)  # ends with the connection, not by the table
    except (ValueError, UserInputError) as e:  # UserInputError is a ValueError
        message = str(e) if isinstance(e, UserInputError) else "enter, exit and min_frames must be numbers"
        return await refuse(ws, 400, message)
    except TooManyStreams as e:
        return await refuse(ws, 429, str(e))
    limits = service.settings
    try:
        await ws.accept()
        await ws.send_text(json.dumps({"session": "open", **service.stream_info(),
                                       "max_frames_per_message": limits.max_stream_frames}))
        while True:
            try:
                message = await asyncio.wait_for(ws.receive(), limits.stream_idle_s)
            except asyncio.TimeoutError:
                return await ws.close(IDLE_CLOSE, f"idle for {limits.stream_idle_s:g} s (EEG2ARM_STREAM_IDLE_S)")
            if message["type"] == "websocket.disconnect":
                return
            if _size(message) > limits.max_message_bytes:  # read whole by uvicorn (up to its 16 MiB), never parsed
                return await ws.close(TOO_BIG, f"a message holds at most {limits.max_message_bytes} bytes")
            await ws.send_text(json.dumps(await step(service, session, message)))
    except (WebSocketDisconnect, OSError):  # the client went away while we answered: nothing left to tell it
        return
    finally:
        try:
            await service.streams.close(session)
        except StreamNotFound:
            pass


def _size(message: dict[str, Any]) -> int:
    """The bytes of a binary or text message."""
    if message.get("bytes") is not None:
        return len(message["bytes"])
    text = message.get("text") or ""
    return len(text) if text.isascii() else len(text.encode())


async def step(service: Any, session: str, message: dict[str, Any]) -> dict[str, Any]:
    """One message of frames -> the session's answer, or {"error", "status"} leaving the session unchanged."""
    config, max_frames = service.config, service.settings.max_stream_frames
    try:
        if message.get("bytes") is not None:
            X = frames_from_npy(message["bytes"], config, max_frames)  # (C, F, n)
        else:
            X = frames_from_json(_frames_field(message.get("text") or "", config, max_frames), config, max_frames)
        results, pending, latest = await service.streams.push(session, X)
    except TooLarge as e:
        return {"error": unchanged(e), "status": 413}
    except UserInputError as e:
        return {"error": unchanged(e), "status": 400}
    except StreamNotFound as e:
        return {"error": str(e), "status": 404}
    return {"results": [as_json(r) for r in results], "pending": pending,
            "latest": None if latest is None else as_json(latest)}


def unchanged(error: Exception) -> str:
    """A bad message's error, saying that the session goes on as it was."""
    message = str(error)
    return message if message.endswith(UNCHANGED) else f"{message}; {UNCHANGED}"


def _frames_field(text: str, config: Any, max_frames: int) -> Any:
    """The `frames` of a text message, its size and nesting checked (serving/json_scan.py) before it is parsed."""
    check_json(text.encode(), frames_bound(max_frames, config, "send the frames in parts"), "the message")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # malformed, or nested past the parser's recursion limit
        data = None
    if not isinstance(data, dict) or "frames" not in data:
        raise UserInputError('a text message must be JSON {"frames": ...} (or send the frames as numpy.save bytes '
                             'in a binary message)')  # step() adds "the stream is unchanged" to every error
    return data["frames"]
