"""serving/budget.py: the bytes of request bodies a worker works on at once, first come first served."""
import asyncio

import pytest

from serving.budget import BodyBudget


def run(coroutine):
    return asyncio.run(coroutine)


def test_bodies_that_fit_start_at_once_and_one_that_does_not_waits_for_a_release():
    async def scenario():
        budget = BodyBudget(10, uncounted=0)
        assert await budget.acquire(6, wait_s=1) and await budget.acquire(4, wait_s=1) and budget.used == 10
        waiting = asyncio.ensure_future(budget.acquire(5, wait_s=5))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        budget.release(6)
        assert await waiting is True and budget.used == 9
    run(scenario())


def test_first_come_first_served_a_small_body_does_not_pass_a_waiting_large_one():
    async def scenario():
        budget = BodyBudget(10, uncounted=0)
        await budget.acquire(8, wait_s=1)
        large = asyncio.ensure_future(budget.acquire(10, wait_s=5))
        await asyncio.sleep(0.01)
        small = asyncio.ensure_future(budget.acquire(1, wait_s=5))  # would fit now, but the large one came first
        await asyncio.sleep(0.05)
        assert not large.done() and not small.done()
        budget.release(8)
        assert await large is True and not small.done()
        budget.release(10)
        assert await small is True and budget.used == 1
    run(scenario())


def test_a_body_that_waits_too_long_is_refused_and_lets_the_ones_behind_it_in():
    async def scenario():
        budget = BodyBudget(10, uncounted=0)
        await budget.acquire(5, wait_s=1)
        large = asyncio.ensure_future(budget.acquire(10, wait_s=0.1))
        await asyncio.sleep(0.01)
        small = asyncio.ensure_future(budget.acquire(5, wait_s=5))  # fits, but queued behind the large one
        assert await large is False
        assert await small is True and budget.used == 10
    run(scenario())


@pytest.mark.parametrize("admitted_first", [False, True])
def test_a_cancelled_request_leaves_nothing_held(admitted_first):
    async def scenario():
        budget = BodyBudget(10, uncounted=0)
        await budget.acquire(10, wait_s=1)
        waiting = asyncio.ensure_future(budget.acquire(4, wait_s=5))
        await asyncio.sleep(0.01)
        if admitted_first:  # granted, but its task is cancelled before it runs again
            budget.release(10)
        waiting.cancel()
        try:  # granted first, Python 3.11's wait_for may return the grant and drop the cancellation: then the
            held = await waiting  # caller holds it and releases it, as serving/guard.py does in its `finally`
        except asyncio.CancelledError:
            held = False
        assert admitted_first or not held  # a request cancelled while it waits never holds anything
        if held:
            budget.release(4)
        if not admitted_first:
            budget.release(10)
        assert budget.used == 0 and await budget.acquire(10, wait_s=0.1)
    run(scenario())


def test_small_bodies_are_never_counted_nor_kept_waiting():
    """Slow senders of large bodies may hold the whole budget until their body timeout: ordinary requests pass."""
    async def scenario():
        budget = BodyBudget(32, uncounted=4)
        assert await budget.acquire(32, wait_s=1)
        assert await budget.acquire(4, wait_s=0) and budget.used == 32
        budget.release(4)
        assert budget.used == 32 and await budget.acquire(5, wait_s=0.01) is False
    run(scenario())
