"""RemoteStreamer: a streaming session on a running eeg2arm server, behind the same push() as eeg2arm's Streamer.

    decoder = RemoteStreamer("http://127.0.0.1:3000")   # https:// for a server with TLS
    results = decoder.push(frames)        # frames (C, F, n) -> [StepResult, ...]; the server keeps the state
    decoder.close()

The session is a WebSocket (/stream/ws): one connection, one session, on whichever server worker accepted it.
Frames go as numpy.save bytes (NaN included: the server reports them), one reply per push. $EEG2ARM_API_TOKEN, when
set, is sent as the bearer token; a private CA for https is taken from $SSL_CERT_FILE (the WebSocket) and
$REQUESTS_CA_BUNDLE (the /metadata request).

The connection is websockets' asyncio client on a private event loop in a daemon thread (`LoopThread`), every step
(open, send, receive, close) bounded by `timeout`. Not its threaded sync client: over `wss://`, when the server does
not answer the upgrade in time, it waits for good to join its reader thread, which stays blocked in a TLS read
(tests/test_stream_service.py reproduces it with a TLS peer that never answers); asyncio's TLS never blocks. The loop
keeps running between pushes, so the server's keepalive pings are answered during pauses, and the caller's thread
may run its own event loop (a notebook).
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import ssl
import threading
from collections.abc import Awaitable
from typing import TypeVar
from urllib.parse import urlencode, urlsplit

import numpy as np
import requests
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from eeg2arm.config import EEGConfig
from eeg2arm.errors import UserInputError
from eeg2arm.realtime.streamer import StepResult

log = logging.getLogger("eeg2arm")
T = TypeVar("T")


class LoopThread:
    """A private asyncio event loop running in a daemon thread, for steps called from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="eeg2arm-remote-stream", daemon=True)
        self.thread.start()

    def run(self, step: Awaitable[T], timeout: float) -> T:
        """The step's result, or TimeoutError after `timeout` seconds (the step cancelled)."""
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(step, timeout), self.loop)
        try:
            return future.result(timeout + 1)  # wait_for ends it first; the extra second is for its cancelling
        except BaseException:  # a timeout, or Ctrl-C while waiting: the step must not go on alone
            future.cancel()
            raise

    def stop(self) -> None:
        """Cancel whatever still runs on the loop (a step a Ctrl-C left behind), then end the thread and the loop."""
        async def cancel_the_rest() -> None:
            rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:  # not through run(): its wait_for would be one of the tasks cancelled
            asyncio.run_coroutine_threadsafe(cancel_the_rest(), self.loop).result(5)
        except TimeoutError:
            log.warning("stream tasks still running after 5 s; leaving them to the process's exit")
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            if not self.thread.is_alive():
                self.loop.close()


class RemoteStreamer:
    """The server session opens with the first push, so nothing is held on the server before frames flow."""

    def __init__(self, url: str, enter: float = 0.7, exit: float = 0.5, min_frames: int = 3, timeout: float = 10.0):
        self.url, self.timeout = url.rstrip("/"), timeout
        self.smoothing = {"enter": enter, "exit": exit, "min_frames": min_frames}
        token = os.environ.get("EEG2ARM_API_TOKEN")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.ws: ClientConnection | None = None
        self.loop: LoopThread | None = None  # the session's, from its opening to close()
        self.config = EEGConfig.from_dict(self._metadata()["config"])

    def _run(self, step: Awaitable[T]) -> T:
        """One step of the session on its loop, at most `timeout` seconds (TimeoutError beyond)."""
        if self.loop is None:
            self.loop = LoopThread()
        return self.loop.run(step, self.timeout)

    def _metadata(self) -> dict:
        try:
            r = requests.get(f"{self.url}/metadata", headers=self.headers, timeout=self.timeout)
        except requests.RequestException as e:
            raise UserInputError(f"cannot reach the eeg2arm server at {self.url} ({type(e).__name__}): start it "
                                 f"with `bentoml serve` or fix --url") from None
        if not r.ok:
            raise UserInputError(f"server answered {r.status_code} to /metadata: {error_message(r.content)}")
        try:
            meta = r.json()
            meta["config"]["n_electrodes"]
        except (ValueError, KeyError, TypeError):
            raise UserInputError(f"{self.url} is not an eeg2arm server (its /metadata has no model config): "
                                 f"fix --url") from None
        return meta

    def _open(self) -> None:
        """Connect and wait for the server's hello (the session is then open); on any failure nothing stays open."""
        parts = urlsplit(self.url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        uri = f"{scheme}://{parts.netloc}{parts.path}/stream/ws?{urlencode(self.smoothing)}"
        opened = False
        try:
            self.ws = self._run(connect(uri, additional_headers=self.headers, compression=None, proxy=None,
                                        ssl=ssl.create_default_context() if scheme == "wss" else None,
                                        open_timeout=self.timeout, close_timeout=self.timeout / 2,
                                        max_size=None))
            self._receive()  # the server's hello
            opened = True
        except InvalidStatus as e:
            raise UserInputError(f"server answered {e.response.status_code} to /stream/ws: "
                                 f"{error_message(e.response.body or b'')}") from None
        except (OSError, WebSocketException) as e:  # TimeoutError is an OSError
            raise UserInputError(f"cannot open a stream on the eeg2arm server at {self.url} ({type(e).__name__}): "
                                 f"start it with `bentoml serve` or fix --url") from None
        finally:
            if not opened:
                self.close()

    def _receive(self) -> dict:
        """The session's next message."""
        try:
            return json.loads(self._run(self.ws.recv()))
        except TimeoutError:
            raise UserInputError(f"the eeg2arm server at {self.url} did not answer within {self.timeout:g} s") \
                from None
        except WebSocketException as e:
            reason = getattr(getattr(e, "rcvd", None), "reason", "") or type(e).__name__
            raise UserInputError(f"the stream session on {self.url} ended ({reason}): start a new stream") from None

    def push(self, frames: np.ndarray) -> list[StepResult]:
        """frames (C, F, n) -> one StepResult per pooled frame the server completed."""
        if self.ws is None:
            self._open()
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(frames, dtype=np.float32))
        try:
            self._run(self.ws.send(buf.getvalue()))
            answer = self._receive()
        except (TimeoutError, WebSocketException):
            self.close()
            raise UserInputError(f"the stream session on {self.url} ended: start a new stream") from None
        except BaseException:  # no answer in time, the session ended, Ctrl-C: a late answer must not pass for the next
            self.close()
            raise
        if "error" in answer:
            raise UserInputError(f"server answered {answer.get('status', 400)} to /stream/ws: {answer['error']}")
        return [StepResult(r["frame"], np.asarray(r["probs"]), r["pred"], r["decision"]) for r in answer["results"]]

    def reset(self) -> None:
        """Start again from a clean state (after a gap in the signal): the next push opens a new session."""
        self.close()

    def close(self) -> None:
        """End the session: closing the connection closes it on the server; the socket is let go of either way."""
        ws, self.ws, loop, self.loop = self.ws, None, self.loop, None
        if ws is not None:
            try:
                loop.run(aborted_after(ws.close(), ws), self.timeout)
            except (OSError, WebSocketException) as e:
                log.warning("stream connection not closed cleanly (%s)", type(e).__name__)
        if loop is not None:
            loop.stop()


async def aborted_after(closing: Awaitable[None], ws: ClientConnection) -> None:
    """Await the closing handshake, then abort the transport whatever happened (a no-op after a clean close), so that
    a close cut short (a full send buffer, a timeout) leaves no socket open."""
    try:
        await closing
    finally:
        ws.transport.abort()


def error_message(body: bytes) -> str:
    """The message of an error answer {"error": ...} (any other body as text), at most 300 characters."""
    try:
        return str(json.loads(body)["error"])[:300]
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace").strip()[:300]
