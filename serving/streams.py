"""The open streams of one server process: a table of session id -> Streamer, bounded in number and idle time.

    table = StreamTable(lambda hysteresis: Streamer(step, hysteresis), max_streams=64, idle_timeout_s=60)
    sid = table.open(Hysteresis())
    results, pending, latest = await table.push(sid, frames)  # one StepResult per complete group of frames (C, F, n)
    frames_done = await table.close(sid)

Every session has its own Streamer (buffer, model state, Hysteresis), so sessions never see each other's frames.
The table is used from one asyncio event loop (the server worker's), so the dict needs no thread lock. The model
steps run in a worker thread, never on the event loop, so a slow step (a bigger model, a GPU) stalls no other
connection; a per-session asyncio.Lock (first come, first served) keeps one session's pushes in arrival order.
Sessions idle for longer than `idle_timeout_s` are dropped lazily, on every open and lookup, except those owned by
a connection (a WebSocket's): they end with it, and the connection has its own idle timeout.

A session id is the capability to step and close that session: 256 random bits, never logged nor put in a message.
"""
from __future__ import annotations

import asyncio
import time
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from eeg2arm.realtime.smoothing import Hysteresis
from eeg2arm.realtime.streamer import StepResult, Streamer

NO_STEP_GRAPH = ("this model was exported without a step graph (model.step.onnx: `eeg2arm export --no-stream`, or "
                 "a model trained with --normalize, cannot stream): export a model that can stream again to use "
                 "/stream; /predict works as before")


def as_json(result: StepResult) -> dict[str, Any]:
    return {"frame": result.frame, "probs": result.probs.tolist(), "pred": result.pred, "decision": result.decision}


async def _in_thread(push: Callable[[np.ndarray], list[StepResult]], frames: np.ndarray) -> list[StepResult]:
    """push(frames) in a worker thread. Cancelled meanwhile (a timeout, a client gone), it still waits for the
    thread to finish, so the session's lock is never released while its Streamer is in use."""
    step = asyncio.get_running_loop().run_in_executor(None, push, frames)
    try:
        return await asyncio.shield(step)
    except asyncio.CancelledError:
        await asyncio.wait({step})
        raise


class StreamNotFound(LookupError):
    """The session id is unknown, expired or closed."""


class TooManyStreams(RuntimeError):
    """All `max_streams` sessions are open."""


@dataclass
class Stream:
    streamer: Streamer
    last_used: float
    owned: bool = False  # by a connection, which closes it: never expired by the table
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False


class StreamTable:
    def __init__(self, make_streamer: Callable[[Hysteresis], Streamer], max_streams: int, idle_timeout_s: float,
                 clock: Callable[[], float] = time.monotonic):
        if max_streams < 1 or not idle_timeout_s > 0:
            raise ValueError(f"need max_streams >= 1 and idle_timeout_s > 0, got {max_streams} and {idle_timeout_s}")
        self.make_streamer = make_streamer
        self.max_streams, self.idle_timeout_s, self.clock = max_streams, idle_timeout_s, clock
        self._streams: dict[str, Stream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def expire(self) -> int:
        """Drop the sessions idle for longer than the timeout (not one whose push is running, nor one a connection
        owns); return how many."""
        deadline = self.clock() - self.idle_timeout_s
        idle = [sid for sid, s in self._streams.items()
                if s.last_used < deadline and not s.lock.locked() and not s.owned]
        for sid in idle:
            self._streams.pop(sid).closed = True
        return len(idle)

    def open(self, hysteresis: Hysteresis, owned: bool = False) -> str:
        """A new session with its own Streamer; TooManyStreams when `max_streams` are open. `owned`: by a
        connection that closes it when it ends (the table never expires it)."""
        self.expire()
        if len(self._streams) >= self.max_streams:
            raise TooManyStreams(f"all {self.max_streams} stream sessions of this server are open: close one "
                                 f"(POST /stream/close) or wait {self.idle_timeout_s:g} s for an idle one to expire")
        sid = secrets.token_urlsafe(32)
        self._streams[sid] = Stream(self.make_streamer(hysteresis), self.clock(), owned)
        return sid

    def get(self, sid: str) -> Stream:
        """The open session `sid`, marked as used now; StreamNotFound when it is unknown, expired or closed."""
        self.expire()
        stream = self._streams.get(sid)
        if stream is None:
            raise StreamNotFound(f"no open stream session with this id (unknown, closed, or idle for more than "
                                 f"{self.idle_timeout_s:g} s): open a new one with POST /stream/open")
        stream.last_used = self.clock()
        return stream

    async def push(self, sid: str, frames: np.ndarray) -> tuple[list[StepResult], int, StepResult | None]:
        """Feed frames (C, F, n) to session `sid` -> (one StepResult per complete group, frames still buffered,
        the session's newest StepResult: None before its first group).

        Pushes to one session run one at a time, in arrival order. A bad frame raises UserInputError and leaves
        the session as it was.
        """
        stream = self.get(sid)
        async with stream.lock:
            if stream.closed:  # closed while this push waited for the lock
                raise StreamNotFound("this stream session was closed: open a new one with POST /stream/open")
            results = await _in_thread(stream.streamer.push, frames)
            stream.last_used = self.clock()
            return results, stream.streamer.pending.shape[-1], stream.streamer.latest

    async def close(self, sid: str) -> int:
        """Close session `sid` after the pushes already waiting on it; return the pooled frames it processed."""
        stream = self.get(sid)
        del self._streams[sid]
        async with stream.lock:
            stream.closed = True
            return stream.streamer.frames_done
