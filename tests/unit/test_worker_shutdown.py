"""A stopping worker waits for every job task, however each ends, before it closes."""

from __future__ import annotations

import asyncio
from typing import Any

from arq.worker import Worker, func

from workers.__main__ import cancel_lost, jobs_ended


async def _noop(_ctx: dict[Any, Any]) -> None:
    return None


async def test_every_job_task_has_ended_even_when_one_ended_cancelled_first() -> None:
    worker = Worker(functions=[func(_noop, name="noop")], handle_signals=False)
    handed_back: list[str] = []

    async def finishing() -> None:  # found by the stop past its job's code: ends cancelled
        await asyncio.Event().wait()

    async def handing_back() -> None:  # its hand-back outlasts the other's end
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.sleep(0.2))
            handed_back.append("slow")
            raise

    worker.tasks = {"a": asyncio.create_task(finishing()), "b": asyncio.create_task(handing_back())}
    await asyncio.sleep(0)
    for task in worker.tasks.values():
        task.cancel()
    # what arq's close does: its gather ends at the first cancelled task, the hand-back unfinished
    gathered = asyncio.gather(*worker.tasks.values())
    try:
        await gathered
    except asyncio.CancelledError:
        pass
    assert handed_back == [], "the gather waited after all: the test shows nothing"

    await jobs_ended(worker, timeout_s=10)
    assert handed_back == ["slow"]
    assert worker.tasks == {}


async def test_a_job_task_that_never_ends_is_given_up_after_the_timeout() -> None:
    worker = Worker(functions=[func(_noop, name="noop")], handle_signals=False)
    stuck = asyncio.create_task(asyncio.Event().wait())  # on a Redis connection that died
    worker.tasks = {"a": stuck}
    async with asyncio.timeout(5):
        await jobs_ended(worker, timeout_s=0.1)
    assert worker.tasks == {} and not stuck.done()
    stuck.cancel()


async def test_a_job_task_arq_lost_track_of_is_stopped_and_waited_for() -> None:
    """A job still running here, delivered again: arq's dict holds the second task, which
    ended at once (the job was not pending), and has let it go; the first is still ours."""
    worker = Worker(functions=[func(_noop, name="noop")], handle_signals=False)
    handed_back: list[str] = []

    async def first() -> None:  # the attempt running the job's code
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.sleep(0.1))
            handed_back.append("first")
            raise

    running = asyncio.create_task(first())
    second = asyncio.create_task(_noop({}))
    await second
    worker.tasks = {"job-1": second}  # arq's dict: the second delivery replaced the first
    lost = cancel_lost(worker, {running, second})
    assert lost == [running]
    async with asyncio.timeout(5):
        await jobs_ended(worker, timeout_s=2, also=lost)
    assert running.done() and handed_back == ["first"]
