"""The worker process's resources, opened once and shared by every job it runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict, TypeVar

from arq.connections import ArqRedis

from jobcast.bus import Publisher
from jobcast.circuit import Circuit
from jobcast.install import check_install
from jobcast.links import PgLink, RedisLink
from jobcast.queue import Queue
from jobcast.registry import Registry, load_registry
from jobcast.settings import Settings
from jobcast.store import Store
from jobcast.tasks import stop_task, supervised
from workers.cancels import CancelWatch
from workers.claims import Claims
from workers.deliveries import Deliveries
from workers.heartbeat import Heartbeat
from workers.report_writes import ReportWrites
from workers.sweep import worker_sweep

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass
class WorkerState:
    settings: Settings
    store: Store
    registry: Registry
    queue: Queue
    heartbeat: Heartbeat
    publisher: Publisher
    report_writes: ReportWrites
    claims: Claims = field(init=False)  # made with the state: it outlives its statements
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # work that must end before the store closes, whoever cancels its caller (hand-backs)
    finishing: set[asyncio.Task[Any]] = field(default_factory=set)
    # every task of arq's running a job here: arq keeps them by job id, and a second
    # delivery of a job still running replaces the first's in its dict (see cancel_lost)
    running: set[asyncio.Task[Any]] = field(default_factory=set)

    async def outlive_cancel(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` to its end even if the caller is cancelled meanwhile, and keep the
        worker's store and Redis open until it has ended (``open`` waits for it); its result,
        to a caller still waiting. A failure that no caller is left to hear of is logged."""
        task = asyncio.create_task(work)
        self.outlives(task)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_unheard)
            raise

    def outlives(self, task: asyncio.Task[Any]) -> None:
        """The worker's store and Redis stay open until ``task`` has ended."""
        self.finishing.add(task)
        task.add_done_callback(self.finishing.discard)

    @property
    def caps(self) -> dict[str, int]:
        """The per-type concurrency caps: type name to the most that may run at once."""
        return {t.name: t.concurrency for t in self.registry if t.concurrency is not None}

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[WorkerState]:
        """Open Postgres and Redis; run the heartbeat, the sweep and webhook deliveries beside
        the jobs."""
        # every type's code imported now, before any connection: a broken import is one
        # ConfigError at start, not a failure at a job's first run, and a heavy import
        # (polars) does not hold the event loop up mid-run
        registry = load_registry(settings.job_module_list)
        registry.load_code()
        redis_link = RedisLink.of(settings)
        circuit = Circuit(redis_link, "worker")
        async with Store.open(
            settings.database_dsn, max_size=settings.pg_pool_max, link=PgLink.of(settings)
        ) as store:
            await check_install(store, settings)
            redis = redis_link.client(circuit)
            publisher = Publisher(redis, settings, store)
            report_writes = ReportWrites(store, publisher)
            heartbeat = Heartbeat(
                store,
                settings.heartbeat_s,
                redis,
                settings.redis_prefix,
                # before the sweep would find this worker's jobs stale
                deadline_s=min(settings.pg_command_timeout_s, settings.stale_after_s / 2),
                writes=report_writes,
            )
            queue = Queue(redis, settings)
            sweep = worker_sweep(store, queue, redis, publisher, settings, heartbeat, registry)
            state = cls(
                settings=settings,
                store=store,
                registry=registry,
                queue=queue,
                heartbeat=heartbeat,
                publisher=publisher,
                report_writes=report_writes,
            )
            state.claims = Claims(
                store,
                lambda: state.caps,
                heartbeat.worker,
                state.outlives,
                settings.gather_wait_ms / 1000,
            )
            state.tasks = [
                asyncio.create_task(heartbeat.run_forever(), name="heartbeat"),
                asyncio.create_task(
                    supervised("cancel-watch", CancelWatch(redis, settings, heartbeat).run_forever),
                    name="cancel-watch",
                ),
                asyncio.create_task(supervised("sweep", sweep.run_forever), name="sweep"),
                asyncio.create_task(
                    supervised("webhooks", Deliveries(store, settings).run_forever),
                    name="webhooks",
                ),
            ]
            try:
                yield state
            finally:
                if state.finishing:  # hand-backs, and the code of attempts stopped
                    await asyncio.wait(state.finishing, timeout=settings.persist_deadline_s)
                for task in state.tasks:
                    task.cancel()
                for task in state.tasks:
                    await stop_task(task)
                await state.publisher.close()
                await circuit.close()
                await redis.aclose()


class WorkerContext(TypedDict, total=False):
    """arq's ``ctx`` in jobcast's worker: what is opened at start, and what arq adds.

    ``jobcast`` is put in by the supervisor (``python -m workers``) or by the startup of
    ``WorkerSettings`` (arq's own runner), which also keeps ``jobcast_exit`` to close it.
    arq sets ``redis`` at start and the job's fields for each job it runs.
    """

    jobcast: WorkerState
    jobcast_exit: contextlib.AsyncExitStack
    redis: ArqRedis
    job_id: str
    job_try: int
    enqueue_time: datetime
    score: int


def _unheard(task: asyncio.Task[Any]) -> None:
    """Log how work that outlived its caller's cancel failed (the shield that the caller
    left takes the failure as heard, and says nothing of it)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("work left running after its caller was cancelled failed: %r", exc)
