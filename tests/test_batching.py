"""Server-side batching in-process: concurrent requests share ONNX Runtime calls, one window length T per call,
at most max_frames frames (windows x T) per call."""
import asyncio

import numpy as np

from export.session import OnnxPredictor
from serving.batching import WindowBatcher


def test_concurrent_requests_are_batched_by_length_and_answered_in_order(exported, bandpower):
    predictor = OnnxPredictor(exported[0], device="cpu")
    calls = []

    def run(X):  # the service's model call: one real ORT session run, its batch shape recorded
        calls.append(X.shape)
        return predictor.session.run(["probs"], {"x": X})[0]

    X = bandpower[0]
    sizes_and_lengths = [(1, 15), (2, 9), (1, 15), (5, 15), (1, 9), (3, 4), (1, 15), (2, 9)] * 4  # 32 requests
    requests = [np.ascontiguousarray(X[i:i + n, ..., :T]) for i, (n, T) in enumerate(sizes_and_lengths)]
    batcher = WindowBatcher(run, max_frames=75)  # the largest request: 5 windows of T=15

    async def send_all():
        return await asyncio.gather(*(batcher(r) for r in requests))

    answers = asyncio.run(send_all())
    for r, a in zip(requests, answers):  # each request gets its own windows' answers, in its order
        assert np.abs(a - predictor.run(r)["probs"]).max() <= 1e-6
    assert len(calls) < len(requests)  # requests did share calls
    assert {T for *_, T in calls} == {15, 9, 4}  # one length per call (mixed lengths cannot concatenate)
    assert sum(B for B, *_ in calls) == sum(n for n, _ in sizes_and_lengths)  # every window ran exactly once
    assert max(B * T for B, _, _, T in calls) <= 75  # the bound on a call: windows x T


def test_the_running_drain_task_is_held_by_the_batcher(bandpower):
    """asyncio keeps only weak references to tasks: an unreferenced drain task may be garbage collected mid-way,
    leaving the batcher busy forever and every later request waiting (review item 8)."""
    import gc
    import threading

    release = threading.Event()

    def run(X):  # a model call that waits until the test has looked
        release.wait(10)
        return X[:, 0, 0, :1]

    batcher = WindowBatcher(run, max_frames=64)
    X = np.ascontiguousarray(bandpower[0][:1, ..., :4])

    async def main():
        request = asyncio.ensure_future(batcher(X))
        await asyncio.sleep(0.05)  # the drain task is now running the model call in a thread
        drain = next(t for t in asyncio.all_tasks() if t.get_coro().__name__ == "_drain")
        holders = [r for r in gc.get_referrers(drain) if r is batcher or r is vars(batcher)]
        release.set()
        return holders, await request

    holders, answer = asyncio.run(main())
    assert holders, "the drain task is referenced only weakly"
    assert answer.shape == (1, 1)


def test_requests_still_on_their_way_join_the_first_call(bandpower):
    """The batching wait: a request that finds the model idle lets those the event loop is still parsing (here, a
    few loop turns behind it) join its call, instead of a call of one followed by a call of the rest; a call
    stays within max_frames."""
    calls = []

    def run(X):
        calls.append(len(X))
        return X[:, 0, 0, :1]

    X = np.ascontiguousarray(bandpower[0][:1, ..., :4])  # one window of T=4

    async def parsed_then_sent(turns: int) -> np.ndarray:
        for _ in range(turns):  # the steps of reading and parsing a request
            await asyncio.sleep(0)
        return await batcher(X)

    async def main(n: int) -> None:
        await asyncio.gather(*(parsed_then_sent(i) for i in range(n)))

    batcher = WindowBatcher(run, max_frames=64)
    asyncio.run(main(6))
    assert calls == [6]
    calls.clear()
    batcher = WindowBatcher(run, max_frames=8)  # two windows of T=4 fill a call
    asyncio.run(main(6))
    assert calls == [2, 2, 2]
