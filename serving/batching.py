"""Adaptive batching of concurrent requests, with BentoML's own dispatcher called in-process.

`@bentoml.api(batchable=True)` drives this same CorkDispatcher, but only for an HTTP route: reaching such a
route from /predict goes through BentoML's internal client, which in 1.4.30+ closes its connection pool every
100 requests under the requests still in flight (500s for 9-47 % of requests at 16-64 clients here; upstream
bentoml#5540, #5544). Calling the dispatcher directly keeps its batching algorithm without that hop.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

import numpy as np
from bentoml._internal.marshal.dispatcher import CorkDispatcher
from bentoml.exceptions import ServiceUnavailable


def _overloaded() -> np.ndarray:
    raise ServiceUnavailable("the server is overloaded (batching latency budget exceeded): retry later")


class WindowBatcher:
    """Gathers the windows of concurrent requests into shared session calls, one call per window length T.

    Windows of different T are grouped, not padded: padding would change what the model sees.
    """

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], max_batch_size: int, max_latency_ms: int) -> None:
        self._run = run  # (B, C, F, T) -> (B, ...)
        dispatcher = CorkDispatcher(max_latency_in_ms=max_latency_ms, max_batch_size=max_batch_size,
                                    fallback=_overloaded, get_batch_size=len, batch_dim=(0, 0))
        self._dispatch = dispatcher(self._run_grouped)

    async def __call__(self, X: np.ndarray) -> np.ndarray:
        """Run X (B, C, F, T) together with whatever other requests arrive within the latency budget."""
        return await self._dispatch(X)

    def _run_grouped(self, requests: Sequence[np.ndarray]) -> list[np.ndarray]:
        by_length: dict[int, list[int]] = defaultdict(list)
        for i, X in enumerate(requests):
            by_length[X.shape[-1]].append(i)
        out: list[np.ndarray] = [np.empty(0)] * len(requests)
        for idx in by_length.values():
            Y = self._run(np.concatenate([requests[i] for i in idx]))
            for i, part in zip(idx, np.split(Y, np.cumsum([len(requests[i]) for i in idx])[:-1])):
                out[i] = part
        return out
