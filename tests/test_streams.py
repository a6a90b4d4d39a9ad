"""serving/streams.py without a server: the session table over the real exported step graph, with a fake clock."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from eeg2arm.errors import UserInputError
from eeg2arm.realtime.smoothing import Hysteresis
from eeg2arm.realtime.streamer import Streamer
from export.parity import real_stream
from export.step import OnnxStep, step_path
from serving.streams import StreamNotFound, StreamTable, TooManyStreams


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def step(exported) -> OnnxStep:
    return OnnxStep(step_path(exported[0]), device="cpu")


def table(step: OnnxStep, max_streams: int = 4, idle: float = 60.0, clock: Clock | None = None) -> StreamTable:
    return StreamTable(lambda h: Streamer(step, h), max_streams, idle, clock or Clock())


def test_idle_sessions_expire_and_use_keeps_them(step):
    clock = Clock()
    t = table(step, clock=clock)
    a, b = t.open(Hysteresis()), t.open(Hysteresis())
    clock.now += 40
    t.get(a)  # used: its idle time starts again
    clock.now += 30  # b idle 70 s > 60, a idle 30 s
    with pytest.raises(StreamNotFound, match="open a new one"):
        t.get(b)
    assert t.get(a).streamer is not None and len(t) == 1
    clock.now += 61
    assert t.expire() == 1 and len(t) == 0


def test_the_number_of_sessions_is_bounded(step):
    clock = Clock()
    t = table(step, max_streams=2, clock=clock)
    a = t.open(Hysteresis())
    t.open(Hysteresis())
    with pytest.raises(TooManyStreams, match="all 2 stream sessions"):
        t.open(Hysteresis())
    asyncio.run(t.close(a))
    c = t.open(Hysteresis())  # a closed session frees its slot
    with pytest.raises(TooManyStreams):
        t.open(Hysteresis())
    clock.now += 61
    d = t.open(Hysteresis())  # and so do expired ones
    assert len(t) == 1 and t.get(d)
    with pytest.raises(StreamNotFound):
        t.get(c)


def test_concurrent_pushes_to_one_session_are_serialized_in_order(step, bandpower):
    """40 pushes of 3 frames to one session at once give what one Streamer gives for the whole stream: without
    the per-session lock the threads would interleave on the same buffer and state."""
    frames = real_stream(bandpower[0][45:], 120)  # (C, F, 120) real frames
    expected = Streamer(step).push(frames)
    t = table(step)
    sid = t.open(Hysteresis())

    async def run() -> list:
        answers = await asyncio.gather(*(t.push(sid, frames[..., i:i + 3]) for i in range(0, 120, 3)))
        return [r for results, _, _ in answers for r in results]

    got = asyncio.run(run())
    assert [r.frame for r in got] == list(range(60))
    assert np.abs(np.stack([r.probs for r in got]) - np.stack([r.probs for r in expected])).max() == 0
    assert [r.decision for r in got] == [r.decision for r in expected]


def test_sessions_are_isolated_and_close_reports_frames(step, bandpower):
    a_frames, b_frames = real_stream(bandpower[0][:5], 20), real_stream(bandpower[0][60:], 21)
    t = table(step)
    a, b = t.open(Hysteresis()), t.open(Hysteresis())

    async def run() -> tuple:
        return await asyncio.gather(t.push(a, a_frames), t.push(b, b_frames))

    (ra, pending_a, latest_a), (rb, pending_b, latest_b) = asyncio.run(run())
    assert latest_a is ra[-1] and latest_b is rb[-1]
    assert (pending_a, pending_b) == (0, 1)
    for got, frames in ((ra, a_frames), (rb, b_frames)):
        alone = Streamer(step).push(frames)
        assert np.abs(np.stack([r.probs for r in got]) - np.stack([r.probs for r in alone])).max() == 0
    with pytest.raises(UserInputError, match="NaN"):
        asyncio.run(t.push(a, np.full((*a_frames.shape[:2], 1), np.nan, np.float32)))
    assert asyncio.run(t.close(a)) == 10
    with pytest.raises(StreamNotFound):
        asyncio.run(t.push(a, a_frames))
    with pytest.raises(StreamNotFound):
        asyncio.run(t.close(a))


def test_bad_limits_are_refused(step):
    with pytest.raises(ValueError, match="max_streams"):
        table(step, max_streams=0)
    with pytest.raises(ValueError, match="idle_timeout_s"):
        table(step, idle=0)


def test_a_session_owned_by_a_connection_is_not_expired_by_the_table(step):
    """A WebSocket's session ends with its connection, which has its own idle timeout: the table's clock (set at
    the end of a push) must not drop it under a live connection whose next message comes just in time (review
    item 10: a 404 and close 4408 on a live connection)."""
    clock = Clock()
    t = table(step, max_streams=2, clock=clock)
    owned, http = t.open(Hysteresis(), owned=True), t.open(Hysteresis())
    clock.now += 61
    assert t.expire() == 1  # the HTTP session, idle for longer than the timeout
    assert t.get(owned).streamer is not None
    with pytest.raises(StreamNotFound):
        t.get(http)
    assert asyncio.run(t.close(owned)) == 0 and len(t) == 0  # the connection's end closes it


class Gated:
    """A real Streamer whose push, in the thread that runs it, first waits for `gate`: set by a coroutine on the
    event loop, so it opens only while the loop is free (a push run on the loop would wait out the 10 s and fail)."""

    def __init__(self, streamer: Streamer, gate) -> None:
        self.streamer, self.gate = streamer, gate

    def __getattr__(self, name: str):
        return getattr(self.streamer, name)

    def push(self, frames: np.ndarray) -> list:
        if not self.gate.wait(10):
            raise RuntimeError("the step ran on the event loop: nothing else could run meanwhile")
        return self.streamer.push(frames)


def test_a_step_runs_off_the_event_loop_and_a_cancelled_push_keeps_the_order(step, bandpower):
    """Steps ran on the event loop (issue 17): one slow step stalled every connection of the worker. Now the loop
    is free while a step runs; a push cancelled meanwhile (a timeout, a client gone) still holds its session until
    its step is done, so the next push of that session comes after it."""
    import threading

    frames = real_stream(bandpower[0][45:], 4)  # (C, F, 4): two pushes of one step each
    gate = threading.Event()
    t = StreamTable(lambda h: Gated(Streamer(step, h), gate), 4, 60.0, Clock())
    sid = t.open(Hysteresis())

    async def run() -> list:
        first = asyncio.ensure_future(t.push(sid, frames[..., :2]))
        await asyncio.sleep(0.05)  # the first step waits for the gate in its thread
        first.cancel()
        second = asyncio.ensure_future(t.push(sid, frames[..., 2:]))
        await asyncio.sleep(0.05)
        assert not second.done()  # behind the first step, which still runs
        gate.set()  # a coroutine on the loop: it runs only because the step does not hold the loop
        with pytest.raises(asyncio.CancelledError):
            await first
        results, _, _ = await second
        return results

    assert [r.frame for r in asyncio.run(run())] == [1]  # after the first push's pooled frame 0
