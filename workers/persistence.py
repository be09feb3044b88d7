"""Writing an attempt's reports to Postgres: kept and tried again while Postgres is down,
and an event's write made at most once even when its answer was lost."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from jobcast.errors import StorageUnavailable
from jobcast.model import Event

if TYPE_CHECKING:
    from jobcast.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


class AttemptLost(Exception):
    """This attempt no longer owns the job (cancelled, or handed to another worker)."""


async def persist(call: Callable[[], Awaitable[T]], *, deadline_s: float, what: str) -> T:
    """Run a Postgres write, retrying it while Postgres is unavailable, up to a deadline."""
    delay_s = 0.1
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            return await call()
        except StorageUnavailable as exc:
            if time.monotonic() >= give_up:
                raise
            log.warning(
                "%s: Postgres unavailable; keeping it and trying again in %.1f s (%s)",
                what,
                delay_s,
                exc.__cause__ or exc,
            )
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)


async def persist_event(
    store: Store,
    job_id: UUID,
    last_seq: int,
    call: Callable[[], Awaitable[Event | None]],
    *,
    deadline_s: float,
    what: str,
) -> Event | None:
    """``persist`` for a write that adds the job's next event, made at most once.

    A write whose commit reached Postgres but whose answer never came back (Postgres
    stopped, or the connection dropped, in between) must not be made again: that would
    store the event twice. So before trying again, look for an event after
    ``last_seq``, the last one this attempt knows of: if there is one, the write landed,
    and that is its event.
    """
    tried = False

    async def once() -> Event | None:
        nonlocal tried
        if tried:
            landed = await store.events_after(job_id, last_seq, 1)
            if landed:
                return landed[0]
        tried = True
        return await call()

    return await persist(once, deadline_s=deadline_s, what=what)
