"""Prometheus metrics, correct across several web and worker processes.

Counters and histograms live in each process; with ``PROMETHEUS_MULTIPROC_DIR``
set (``make run`` sets it; see docs/deploy.md) every process writes them to that
folder and ``/metrics`` adds them all up. The numbers that describe the whole
install rather than one process (queue depth, oldest pending job, running jobs)
are read from Redis and Postgres when ``/metrics`` is scraped, so they are right
however many processes there are, on however many machines.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = CONTENT_TYPE_LATEST

_DURATIONS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_LATENCIES_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

JOBS_SUBMITTED = Counter("jobcast_jobs_submitted_total", "Jobs accepted", ["type"])
JOBS_COMPLETED = Counter("jobcast_jobs_completed_total", "Jobs completed", ["type"])
JOBS_FAILED = Counter("jobcast_jobs_failed_total", "Jobs failed for good", ["type"])
JOBS_DEBOUNCED = Counter(
    "jobcast_jobs_debounced_total", "Submits that joined a debounced job not started yet", ["type"]
)
JOBS_RETRIED = Counter("jobcast_jobs_retried_total", "Attempts that will be retried", ["type"])
JOBS_CANCELLED = Counter("jobcast_jobs_cancelled_total", "Jobs cancelled by their owner", ["type"])
JOB_DURATION = Histogram(
    "jobcast_job_duration_seconds",
    "From the first start to the end, of completed jobs",
    ["type"],
    buckets=_DURATIONS_S,
)
STEP_DURATION = Histogram(
    "jobcast_step_duration_seconds",
    "Duration of completed steps",
    ["type", "step"],
    buckets=_DURATIONS_S,
)
EVENTS_PUBLISHED = Counter(
    "jobcast_events_published_total", "Events sent on Redis pub/sub", ["kind"]
)
FANOUT_LATENCY = Histogram(
    "jobcast_event_fanout_seconds",
    "From an event's time to its hand-over to local websockets",
    buckets=_LATENCIES_S,
)
OPEN_WEBSOCKETS = Gauge(
    "jobcast_open_websockets", "Open websockets", ["kind"], multiprocess_mode="livesum"
)
BACKEND_ERRORS = Counter(
    "jobcast_backend_errors_total", "Failed calls to Postgres or Redis", ["backend"]
)
REDIS_CIRCUIT_OPEN = Gauge(
    "jobcast_redis_circuit_open",
    "1 while a process takes Redis for down (a call timed out) and probes it, by client",
    ["client"],
    multiprocess_mode="livemax",
)
SLOW_CONSUMER_DROPS = Counter(
    "jobcast_slow_consumer_drops_total",
    "Websocket subscribers dropped for falling behind (their queue filled)",
)
REDIS_CIRCUIT_TRIPS = Counter(
    "jobcast_redis_circuit_trips_total",
    "Times a process took Redis for down after a call timed out or failed, by client",
    ["client"],
)


def registry() -> CollectorRegistry:
    """Every process's metrics where a multiprocess folder is set, else this one's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return collected
    from prometheus_client import REGISTRY

    return REGISTRY


class _Fixed:
    """A collector of values read just before the scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def render(install: dict[str, float | dict[str, float]]) -> bytes:
    """The exposition text: process metrics plus the install-wide gauges given."""
    families: list[Metric] = []
    for name, value in install.items():
        doc = _INSTALL_DOCS[name]
        if isinstance(value, dict):
            family = GaugeMetricFamily(f"jobcast_{name}", doc, labels=["type"])
            for label, number in value.items():
                family.add_metric([label], number)
        else:
            family = GaugeMetricFamily(f"jobcast_{name}", doc, value=value)
        families.append(family)
    extra = CollectorRegistry()
    extra.register(_Fixed(families))
    return generate_latest(registry()) + generate_latest(extra)


_INSTALL_DOCS = {
    "queue_depth": "Jobs waiting on the Redis queue, not taken by a worker (scheduled included)",
    "queue_due": "Jobs waiting on the Redis queue whose time has come",
    "oldest_pending_seconds": "How long the longest-waiting due job has waited",
    "running_jobs": "Running jobs, by type",
    "pending_jobs": "Pending jobs, by type",
    "stuck_jobs": "Running jobs whose worker stopped beating",
    "stuck_pending_jobs": "Pending jobs past their type's pending limit (reported), by type",
    "workers_alive": "Worker processes that beat within their last few intervals",
    "sweep_overdue_seconds": "How long the sweep's lease has been expired (0: a sweep holds it)",
    "notify_fallback_listeners": "Server processes whose Redis pub/sub is down, on NOTIFY",
    "pubsub_up": "1 while the scraped web process's Redis pub/sub is connected",
}
