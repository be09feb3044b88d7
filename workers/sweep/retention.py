"""Retention: what has been kept long enough is dropped.

Results past their type's keeping time (``/result`` then answers 410), uploads no
job claimed within a day, and finished jobs past ``JOBCAST_RETENTION_*_DAYS``
(their steps, events and deliveries with them). Postgres only.

Each pass over results starts where this process's last pass of the type stopped, so a
sweep reads the jobs that finished since (a process's first pass reads from the first). A
job is found by the pass whose range holds its ``finished_at``: one whose end committed
more than its type's ``result_ttl_s`` after that time was stamped (a finish held up longer
than the time to live) would keep its result until a process's first pass.
"""

from __future__ import annotations

import logging
from datetime import datetime

from jobcast.registry import Registry
from jobcast.settings import Settings
from jobcast.store import Store
from workers.sweep.sweeper import Turn

log = logging.getLogger(__name__)

UNCLAIMED_UPLOAD_S = 86_400


class Retention:
    name = "retention"
    needs_redis = False

    def __init__(self, store: Store, settings: Settings, registry: Registry) -> None:
        self._store = store
        self._settings = settings
        self._registry = registry
        self._expired_to: dict[str, datetime] = {}  # by type: where its next pass starts

    async def run(self, turn: Turn) -> None:
        expired, self._expired_to = await self._store.expire_results(
            {t.name: t.result_ttl_s for t in self._registry}, self._expired_to
        )
        uploads = await self._store.delete_unclaimed_uploads(UNCLAIMED_UPLOAD_S)
        deleted = await self._store.delete_expired(
            self._settings.retention_completed_days,
            self._settings.retention_failed_days,
            self._settings.retention_cancelled_days,
        )
        if expired or uploads or deleted:
            log.info(
                "retention: %d results expired, %d unclaimed uploads and %d finished jobs deleted",
                expired,
                uploads,
                deleted,
            )
