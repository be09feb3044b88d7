"""``GET /metrics``: behind a token when one is set, and cheap however often it is scraped.

The install-wide numbers (queue depth, pending, running and stuck jobs, the oldest
wait) cost Postgres and Redis round trips; each process reads them at most once
per ``JOBCAST_METRICS_CACHE_S``, one read at a time, and every scrape in between
gets the numbers of the last read. Counters and histograms are the process's
own, rendered fresh each time.
"""

from __future__ import annotations

import asyncio
import hmac
import time

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from jobcast import metrics
from jobcast.errors import StorageUnavailable, Unauthorized
from server.admin_gauges import operating_gauges
from server.auth import note_failure
from server.state import Services

Gauges = dict[str, float | dict[str, float]]


class InstallGauges:
    """The install-wide gauges of the last read, read again once they are too old."""

    def __init__(self, max_age_s: float) -> None:
        self._max_age_s = max_age_s
        self._read_at = float("-inf")
        self._values: Gauges = {}
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return time.monotonic() - self._read_at < self._max_age_s

    async def get(self, services: Services) -> Gauges:
        if self._fresh():
            return self._values
        async with self._lock:  # one read at a time; the scrapes that waited share it
            if not self._fresh():
                self._values = await _read(services)
                self._read_at = time.monotonic()
        return self._values


async def _read(services: Services) -> Gauges:
    values: Gauges = {}
    try:
        values.update(await services.store.gauges(services.settings.stale_after_s))
    except StorageUnavailable:
        pass
    try:
        depth, due = await services.queue.depth()
        values.update(queue_depth=float(depth), queue_due=float(due))
    except (RedisError, OSError):
        pass
    values.update(await operating_gauges(services))
    return values


async def metrics_text(request: Request) -> Response:
    """Prometheus text: every process's counters, and the install-wide gauges."""
    services: Services = request.state.services
    expected = services.settings.metrics_token
    if expected is not None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), expected.get_secret_value().encode()
        ):
            if token:
                await note_failure(request)
            raise Unauthorized("/metrics needs Authorization: Bearer $JOBCAST_METRICS_TOKEN")
    gauges: InstallGauges | None = getattr(request.app.state, "install_gauges", None)
    if gauges is None:
        gauges = request.app.state.install_gauges = InstallGauges(services.settings.metrics_cache_s)
    return Response(metrics.render(await gauges.get(services)), media_type=metrics.CONTENT_TYPE)
