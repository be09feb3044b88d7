"""The sweep's lease: one worker sweeps at a time, and never two at once.

A lease in Postgres (a row with an expiry), renewed while the sweep runs, rather than
an advisory lock. A session lock is held for as long as its connection lives, and a
frozen worker (stopped, swapped out, paused by a debugger) keeps its connection alive:
its kernel still answers, so it would keep the lock and nobody would recover the jobs
of stopped workers, its own included, until it thawed. A lease ends on its own.

A lease that ends on its own could end mid-sweep (the sweep outlives it, or the holder
froze), so the holder keeps to two rules:

- while it sweeps, it renews the lease every third of its length, so a sweep of any
  length keeps it (a slow duty included);
- before each step it checks, by its own clock, that the lease it last renewed still
  has a third of its length to run. That clock starts before the renewal is sent, and
  Postgres counts the expiry from when the statement arrives, so the holder's idea of
  the end is never later than Postgres's: once another worker may have taken the lease
  over, the holder has stopped. A holder that froze past its lease finds it lapsed when
  it wakes, before its next step, and stops.

What the rules cannot stop is a step already begun that stalls for more than a third
of the lease (the process frozen in the middle of one job's retry): it ends after the
lease does. Each step is fenced on its own (by attempt, or by a job id made once), so
that one step done twice changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from uuid import uuid4

from jobcast.errors import StorageUnavailable
from jobcast.store import Store
from jobcast.tasks import raise_swallowed_cancel, stop_task

log = logging.getLogger(__name__)


class Lease:
    def __init__(self, store: Store, name: str, duration_s: float) -> None:
        self._store = store
        self._name = name
        self.duration_s = duration_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
        self._valid_until = 0.0  # monotonic; by this process's clock, never after Postgres's

    @property
    def held(self) -> bool:
        """Ours, with at least a third of its length to run: safe to take a step."""
        return time.monotonic() < self._valid_until - self.duration_s / 3

    async def take(self) -> bool:
        """Take the lease, or keep it for another full length; False if another holds it."""
        sent = time.monotonic()
        try:
            ours = await self._store.take_lease(self._name, self.holder, self.duration_s)
        except BaseException:
            self._valid_until = 0.0  # it may have lapsed meanwhile: assume the worst
            raise
        self._valid_until = sent + self.duration_s if ours else 0.0
        return ours

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Renew the lease in the background for as long as the block runs."""
        renewing = asyncio.create_task(self._renew_forever(), name=f"lease-{self._name}")
        try:
            yield
        finally:
            await stop_task(renewing)

    async def _renew_forever(self) -> None:
        while True:
            raise_swallowed_cancel()
            await asyncio.sleep(self.duration_s / 3)
            try:
                if not await self.take():
                    log.warning("lease %s: taken over by another worker; stopping", self._name)
                    return
            except StorageUnavailable as exc:
                log.warning("lease %s: could not renew it (%s)", self._name, exc)
