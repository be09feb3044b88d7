"""Stopping a task never swallows a cancel of the one stopping it, and a task whose own
cancel was swallowed on its way still stops.

A loop that stops a helper task on each turn (the sweep stops its lease's renewer) and
is itself cancelled while it waits for that helper must end: with ``await helper``
inside ``contextlib.suppress(CancelledError)`` it took the cancel for the helper's, ran
on, and whoever stopped it waited forever (a worker's shutdown hung that way).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import cast

import pytest

from jobcast.store import Store
from jobcast.tasks import Supervised, raise_swallowed_cancel, stop_task
from workers.sweep.lease import Lease

CANCEL_POINTS = range(12)  # loop iterations before the cancel: every point of a turn


async def _until_cancelled() -> None:
    await asyncio.Event().wait()


async def _cancelled_at_each_point(turn: Callable[[], Awaitable[None]]) -> list[int]:
    """Cancel a loop of ``turn`` after each number of event-loop iterations; the points
    at which it did not end."""

    async def loop() -> None:
        while True:
            await turn()

    hung = []
    for point in CANCEL_POINTS:
        task = asyncio.create_task(loop())
        for _ in range(point):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=1.0)
        if not done:
            hung.append(point)
            while not task.done():  # it runs on: stop it for good, or the test leaks it
                task.cancel()
                await asyncio.wait([task], timeout=0.01)
        else:
            assert task.cancelled()
    return hung


async def test_a_loop_that_stops_a_helper_each_turn_ends_when_cancelled_at_any_point() -> None:
    async def turn() -> None:
        helper = asyncio.create_task(_until_cancelled())
        try:
            await asyncio.sleep(0)
        finally:
            await stop_task(helper)

    assert await _cancelled_at_each_point(turn) == []


async def test_a_sweep_like_loop_keeping_a_lease_ends_when_cancelled_at_any_point() -> None:
    # the renewer first touches the store after a third of the lease: never, in these turns
    lease = Lease(cast(Store, None), "test", duration_s=3600)

    async def turn() -> None:
        async with lease.kept():
            await asyncio.sleep(0)

    assert await _cancelled_at_each_point(turn) == []


async def test_the_caller_cancelled_while_the_task_winds_down_still_waits_for_its_end() -> None:
    winding, release, wound_down = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await _until_cancelled()
        finally:
            winding.set()
            await release.wait()  # clean-up that takes a while
            wound_down.set()

    task = asyncio.create_task(slow_to_stop())
    stopper = asyncio.create_task(stop_task(task))
    await winding.wait()  # the stopper is waiting for the task's end
    stopper.cancel()
    await asyncio.sleep(0)  # the cancel reaches the stopper while it waits
    assert not stopper.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert wound_down.is_set() and task.cancelled()


async def test_an_exception_the_task_ended_with_is_raised() -> None:
    async def fails_on_cancel() -> None:
        try:
            await _until_cancelled()
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    task = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await stop_task(task)


async def test_a_task_already_cancelled_winds_down_without_a_second_cancel() -> None:
    """Stopping tasks that were all cancelled at once (a worker's loops as it stops) must
    not cut their clean-up short: the webhook sender closes its connections there."""
    winding, release, cleaned_up = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def closes_on_cancel() -> None:
        try:
            await _until_cancelled()
        finally:
            winding.set()
            await release.wait()  # closing connections
            cleaned_up.set()

    task = asyncio.create_task(closes_on_cancel())
    await asyncio.sleep(0)
    task.cancel()
    await winding.wait()  # it is in its clean-up now
    stopper = asyncio.create_task(stop_task(task))
    await asyncio.sleep(0)  # the stopper has done what it does before waiting
    release.set()
    await stopper
    assert cleaned_up.is_set() and task.cancelled()


async def _swallows_a_cancel() -> None:
    """What redis-py's writes do on Python 3.11 when a cancel comes with the answer."""
    try:
        await _until_cancelled()
    except asyncio.CancelledError:
        pass


async def test_a_task_that_swallowed_its_cancel_is_cancelled_again_after_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def runs_on_after_a_swallowed_cancel() -> None:
        await _swallows_a_cancel()
        await _until_cancelled()  # a loop's next turn, with no cancel to come

    task = asyncio.create_task(runs_on_after_a_swallowed_cancel(), name="stubborn")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="jobcast.tasks"):
        await asyncio.wait_for(stop_task(task, grace_s=0.05), timeout=5)
    assert task.cancelled()
    assert "task stubborn still runs" in caplog.text


async def test_a_loop_that_swallows_its_cancel_in_a_turn_ends_at_the_next() -> None:
    turns = 0

    async def loop() -> None:
        nonlocal turns
        while True:
            raise_swallowed_cancel()
            turns += 1
            await _swallows_a_cancel()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done and task.cancelled()
    assert turns == 1


async def test_a_supervised_task_that_swallows_its_cancel_stops_without_the_grace() -> None:
    async def run() -> None:
        await _swallows_a_cancel()
        raise RuntimeError("a turn that failed after the cancel was lost")

    task = Supervised("swallower", run, first_backoff_s=0.01)
    task.start()
    await asyncio.sleep(0)
    # a grace longer than the test's timeout: only raise_swallowed_cancel can end it in time
    await asyncio.wait_for(task.stop(), timeout=5)
