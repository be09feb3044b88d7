"""Work that must outlive its caller's cancel (a question's or a pause's write, a hand-back)
runs to its end through ``WorkerState.outlive_cancel``; a failure of it is heard: by the
caller still waiting, or, once the caller is gone, in the worker's log. Against real
Postgres and Redis."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from jobcast.endpoints import Endpoints
from tests.in_process import worker_settings
from workers.state import WorkerState

FAILING = "SELECT 1 / (SELECT 0)"  # Postgres refuses it as it runs


async def _failing_write(state: WorkerState, started: asyncio.Event, go: asyncio.Event) -> int:
    started.set()
    await go.wait()
    answer: int = await state.store.pool.fetchval(FAILING)
    return answer


async def test_a_failure_after_the_callers_cancel_is_logged(
    endpoints: Endpoints, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    started, go = asyncio.Event(), asyncio.Event()
    async with WorkerState.open(worker_settings(endpoints, database)) as state:
        caller = asyncio.create_task(state.outlive_cancel(_failing_write(state, started, go)))
        await started.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        left = list(state.finishing)
        assert len(left) == 1  # the write goes on, and the store stays open for it
        with caplog.at_level(logging.WARNING, logger="workers.state"):
            go.set()
            await asyncio.wait(left, timeout=10)
    assert left[0].done()
    assert "after its caller was cancelled failed" in caplog.text
    assert "DivisionByZeroError" in caplog.text


async def test_a_failure_with_the_caller_waiting_is_the_callers_alone(
    endpoints: Endpoints, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    started, go = asyncio.Event(), asyncio.Event()
    go.set()
    async with WorkerState.open(worker_settings(endpoints, database)) as state:
        with caplog.at_level(logging.WARNING, logger="workers.state"):
            with pytest.raises(asyncpg.DivisionByZeroError):
                await state.outlive_cancel(_failing_write(state, started, go))
            await asyncio.sleep(0)  # any callback of the work's end has run
    assert "after its caller was cancelled" not in caplog.text
