"""The sweep: what keeps nothing stuck, run by one worker at a time.

Every worker runs the loop (``sweeper``); a lease in Postgres (``lease``) lets one
sweep at a time and never two at once. Each sweep runs these duties, in order:

- ``stale_jobs``: a running job whose worker stopped beating is retried, or failed;
- ``outbox``: a pending job that Redis does not have is queued (Redis needed);
- ``input_expiry``: a waiting job's question past its time limit fails the job, or
  gives the default answer and queues it;
- ``pending_limits``: a due job pending past its type's limit, waiting for a worker slot,
  fails, or is reported stuck (the type decides);
- ``parked``: parked jobs whose key has room (a throttle's window passed, a limit
  raised) are released and queued (Redis needed);
- ``priority_bands``: due delayed and retried jobs are ranked by priority (Redis needed);
- ``schedules``: recurring schedules start the job of each tick that has come;
- ``retention``: expired results, unclaimed uploads and old finished jobs are dropped.

With Redis down, the duties that need only Postgres still run. Every action is
also fenced (by attempt, or by a job id made once), so even two sweeps at once
would do no harm. Completion webhooks are not sent here: ``workers.deliveries``
sends them in a loop of its own.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from jobcast.bus import Publisher
from jobcast.queue import Queue
from jobcast.registry import Registry
from jobcast.settings import Settings
from jobcast.store import Store
from workers.heartbeat import Heartbeat
from workers.sweep.input_expiry import InputExpiry
from workers.sweep.outbox import Outbox
from workers.sweep.parked import Parked
from workers.sweep.pending_limits import PendingLimits
from workers.sweep.priority_bands import PriorityBands
from workers.sweep.retention import Retention
from workers.sweep.schedules import Schedules
from workers.sweep.stale_jobs import StaleJobs
from workers.sweep.sweeper import Duty, Sweeper, Turn

__all__ = ["Duty", "Sweeper", "Turn", "worker_sweep"]


def worker_sweep(
    store: Store,
    queue: Queue,
    redis: aioredis.Redis,
    publisher: Publisher,
    settings: Settings,
    heartbeat: Heartbeat,
    registry: Registry,
) -> Sweeper:
    """The worker's sweep with all its duties."""
    duties: list[Duty] = [
        StaleJobs(store, queue, publisher, settings),
        Outbox(store, queue, settings),
        Parked(store, queue),
        InputExpiry(store, queue, publisher),
        PendingLimits(store, publisher, registry),
        PriorityBands(store, queue),
        Schedules(store, queue, publisher, settings, registry),
        Retention(store, settings, registry),
    ]
    return Sweeper(store, redis, duties, interval_s=settings.reaper_interval_s, outages=[heartbeat])
