"""The install-wide gauges the alerts of deploy/prometheus/alerts.yml watch beside the job
counts: live worker processes, the sweep's overdue lease, the NOTIFY fallback, and this
web process's Redis pub/sub."""

from __future__ import annotations

from redis.exceptions import RedisError

from jobcast.errors import StorageUnavailable
from server.state import Services

# the sweep's lease (workers/sweep/sweeper.py names it so since the first release)
SWEEP_LEASE = "reaper"
_SCAN_COUNT = 500


async def operating_gauges(services: Services) -> dict[str, float | dict[str, float]]:
    values: dict[str, float | dict[str, float]] = {
        "pubsub_up": 1.0 if services.hub.healthy else 0.0
    }
    try:
        row = await services.store.operating_gauges(SWEEP_LEASE)
        if row["sweep_overdue_s"] is not None:
            values["sweep_overdue_seconds"] = row["sweep_overdue_s"]
        values["notify_fallback_listeners"] = row["notify_fallback"]
    except StorageUnavailable:
        pass
    try:
        pattern = f"{services.settings.redis_prefix}:worker:*"
        alive = 0
        async for _ in services.redis.scan_iter(match=pattern, count=_SCAN_COUNT):
            alive += 1
        values["workers_alive"] = float(alive)
    except (RedisError, OSError):
        pass
    return values
