"""What the worker's gatherers share: its writer of reports and ends (``report_writes``)
and its claims (``claims``) each keep the jobs that asked while a statement was in flight,
and send them together in the next."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

T = TypeVar("T")


def once_a_job(
    waiting: Sequence[tuple[T, asyncio.Future[Any]]], job_of: Callable[[T], UUID]
) -> tuple[list[tuple[T, asyncio.Future[Any]]], list[tuple[T, asyncio.Future[Any]]]]:
    """What to send now, at most one of each job (in the order they came), and the rest,
    for the statement after: a job's two writes keep their order, and a job delivered
    twice at once is claimed once (its second claim finds it running)."""
    now: list[tuple[T, asyncio.Future[Any]]] = []
    later: list[tuple[T, asyncio.Future[Any]]] = []
    seen: set[UUID] = set()
    for item in waiting:
        job_id = job_of(item[0])
        (later if job_id in seen else now).append(item)
        seen.add(job_id)
    return now, later


def cancel_all(*waiting: Sequence[tuple[Any, asyncio.Future[Any]]]) -> None:
    """A gatherer stopped midway (the worker's loop closing): none of those it kept waits
    forever."""
    for items in waiting:
        for _, future in items:
            future.cancel()
