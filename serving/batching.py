"""Batching of concurrent requests: the windows that arrive while the model is busy go into its next call.

    batcher = WindowBatcher(run, max_frames=4096)     # run: (B, C, F, T) -> (B, ...), called in a thread
    out = await batcher(X)                             # X (B, C, F, T) -> run's answer for these B windows

Why not BentoML's own batching: `@bentoml.api(batchable=True)` batches requests of one shape along one axis, but
/predict requests carry several windows each, of any length T (concatenated windows must share T, and padding
would change what the model sees). Reaching a batchable method from /predict would also go through BentoML's
internal HTTP client, which in 1.4.30+ closes its connection pool under requests in flight (bentoml#5540, #5544).
So the service batches in-process: no latency budget to tune and no waiting when idle (a lone request runs after
one turn of the event loop; under load, whatever queued during one call shares the next, and before a call the
drain yields to the loop for as long as requests it is parsing keep joining and the call is not full: fewer,
larger calls, cheaper per window, ~220 µs a window at B=16 against ~390 µs alone for the demo model), one call
per window length T. A call holds at most `max_frames` frames (windows x T), the most one request may send, so a shared call costs no more memory than
the largest single request.
"""
from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from typing import Callable

import numpy as np


class WindowBatcher:
    def __init__(self, run: Callable[[np.ndarray], np.ndarray], max_frames: int) -> None:
        self._run = run  # (B, C, F, T) -> (B, ...)
        self.max_frames = max_frames
        self._queue: deque[tuple[np.ndarray, asyncio.Future]] = deque()
        self._queued = 0  # frames in the queue
        self._busy = False
        self._drainer: asyncio.Task | None = None  # held here: the event loop keeps only a weak reference to a task

    async def __call__(self, X: np.ndarray) -> np.ndarray:
        """Run X (B, C, F, T), sharing a model call with the requests waiting at the same time."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((X, future))
        self._queued += _frames(X)
        if not self._busy:
            self._busy = True
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                waiting = 0
                while waiting < len(self._queue) and self._queued < self.max_frames:  # let the requests the loop
                    waiting = len(self._queue)  # is parsing join this call, until none comes or it is full
                    await asyncio.sleep(0)
                batch, frames = [], 0
                while self._queue and (not batch or frames + _frames(self._queue[0][0]) <= self.max_frames):
                    X, future = self._queue.popleft()
                    batch.append((X, future))
                    frames += _frames(X)
                self._queued -= frames
                try:  # in a worker thread: the event loop goes on parsing the next requests meanwhile
                    outs = await loop.run_in_executor(None, self.run_grouped, [X for X, _ in batch])
                except Exception as e:  # noqa: BLE001 - each waiting request gets the model's error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                for (_, future), out in zip(batch, outs):
                    if not future.done():  # a request whose client went away was cancelled
                        future.set_result(out)
        finally:
            self._busy = False

    def run_grouped(self, requests: list[np.ndarray]) -> list[np.ndarray]:
        """One model call per window length T over all `requests`; each request's rows back in its order."""
        by_length: dict[int, list[int]] = defaultdict(list)
        for i, X in enumerate(requests):
            by_length[X.shape[-1]].append(i)
        out: list[np.ndarray] = [np.empty(0)] * len(requests)
        for idx in by_length.values():
            Y = self._run(np.concatenate([requests[i] for i in idx]))
            for i, part in zip(idx, np.split(Y, np.cumsum([len(requests[i]) for i in idx])[:-1])):
                out[i] = part
        return out


def _frames(X: np.ndarray) -> int:
    return X.shape[0] * X.shape[-1]  # windows x T
