"""Bytes of request bodies a worker holds at once: at most `capacity`, in arrival order.

    budget = BodyBudget(32 * MiB, uncounted=0)
    if await budget.acquire(content_length, wait_s=10):     # False: it waited wait_s in vain -> 503
        try:
            ...  # read, parse, run the model
        finally:
            budget.release(content_length)

The request limits bound one request (about 100 MB of memory for the largest), not how many arrive together: a
body is held in a few copies while it is read and parsed, so many concurrent bodies add up (32 of the largest grew
one worker by 1.27 GB, 128 of 1 MB by 1 GB). A budget counts the declared bytes of the bodies it holds; a body that
does not fit waits until earlier ones are released (first come, first served: small bodies cannot starve a large
one). Bodies of up to `uncounted` bytes pass without being counted nor kept waiting. serving/guard.py holds two
budgets: one while large bodies arrive, one while every body is worked on.
"""
from __future__ import annotations

import asyncio
from collections import deque


class BodyBudget:
    def __init__(self, capacity: int, uncounted: int = 0) -> None:
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
