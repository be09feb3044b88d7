"""Statistics: the jobs table (and its keys) is analyzed once it has doubled.

Postgres plans a statement with a table's size as it is then, and a connection keeps its
plans: made while a new install's tables were a few pages long, the statements that claim
and end a worker's jobs read `jobs` whole, and went on doing so as it grew, until an ANALYZE
made them again. Autovacuum does that where it runs, within about a minute; this pass does it
within a sweep, and where autovacuum is off. `jobs`, and `job_keys`, are analyzed when one has
doubled since Postgres last measured it (``jobcast_analyze_grown`` in schema.sql), so a few
times in an install's first minutes and rarely after. Postgres only.
"""

from __future__ import annotations

import logging

from jobcast.store import Store
from workers.sweep.sweeper import Turn

log = logging.getLogger(__name__)


class Statistics:
    name = "statistics"
    needs_redis = False

    def __init__(self, store: Store) -> None:
        self._store = store

    async def run(self, turn: Turn) -> None:
        analyzed = await self._store.analyze_grown()
        if analyzed:
            log.info("statistics: %s analyzed, grown since last measured", ", ".join(analyzed))
