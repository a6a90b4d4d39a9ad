"""How many request bodies a worker works on at once: at most EEG2ARM_MAX_INFLIGHT_MB of them, in arrival order.

    budget = BodyBudget(32 * MiB)
    if await budget.acquire(content_length, wait_s=10):     # False: it waited wait_s in vain -> 503
        try:
            ...  # read and parse the body, run the model
        finally:
            budget.release(content_length)

The request limits bound one request (about 100 MB of memory for the largest), not how many arrive together: a
body is held in a few copies while it is read and parsed, so 32 concurrent bodies of the largest size grew one
worker by 1.27 GB. The budget counts the declared bytes of the bodies being read or worked on; a body that does
not fit waits until earlier ones are answered (first come, first served: small bodies cannot starve a large one).
Bodies of up to `uncounted` bytes (1 MiB: hundreds of windows of the demo model) are never counted nor kept
waiting, so clients that send large bodies slowly, holding the budget until their body timeout, can delay only
other large bodies.
"""
from __future__ import annotations

import asyncio
from collections import deque


class BodyBudget:
    def __init__(self, capacity: int, uncounted: int = 2**20) -> None:
        self.capacity = capacity  # bytes of bodies in work at once (at least one body of the largest size)
        self.uncounted = uncounted  # bodies this small pass uncounted
        self.used = 0
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()

    async def acquire(self, size: int, wait_s: float) -> bool:
        """Count `size` bytes in once they fit behind the bodies waiting before them; False after `wait_s`."""
        if size <= self.uncounted:
            return True
        if not self._waiting and self.used + size <= self.capacity:
            self.used += size
            return True
        admitted = asyncio.get_running_loop().create_future()
        entry = (size, admitted)
        self._waiting.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(admitted), wait_s)
        except asyncio.TimeoutError:
            pass
        except asyncio.CancelledError:  # the request is gone: what it holds or waits for goes to the others
            self._give_up(entry)
            raise
        if admitted.done():  # (also when it was admitted just as the time ran out)
            return True
        self._give_up(entry)
        return False

    def release(self, size: int) -> None:
        if size > self.uncounted:
            self.used -= size
            self._admit()

    def _give_up(self, entry: tuple[int, asyncio.Future]) -> None:
        size, admitted = entry
        if admitted.done():
            self.release(size)
        else:
            self._waiting.remove(entry)
            self._admit()  # the bodies behind it may fit now

    def _admit(self) -> None:
        while self._waiting and self.used + self._waiting[0][0] <= self.capacity:
            size, admitted = self._waiting.popleft()
            self.used += size
            admitted.set_result(None)
