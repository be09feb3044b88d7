"""Settings of running jobs: workers, retries, the sweep, retention, webhooks, outputs."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, Field, field_validator

from jobcast.schedules import Schedule


class JobSettings(BaseModel):
    """How workers run jobs: concurrency, retries, heartbeats, the sweep, retention, outputs."""

    worker_concurrency: int = Field(
        50,
        ge=1,
        le=10_000,
        description="Jobs one worker process runs at once.",
    )
    fair_window: int = Field(
        100,
        ge=0,
        le=100_000,
        description="Jobs of one tenant (or owner, without a tenant) queued for the workers at "
        "once; the rest wait in Postgres and go to the queue as those start, so tenants take "
        "turns under a backlog. 0: no fairness, every job is queued at once.",
    )
    retry_base_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="First retry delay; each later one doubles, with jitter.",
    )
    retry_max_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="Longest wait between retries.",
    )
    heartbeat_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often a worker confirms each running job; also how soon a cancel "
        "reaches a running job when the worker does not hear of it on Redis.",
    )
    stale_after_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="A running job without a heartbeat for this long lost its worker: "
        "it is retried, or failed when its attempts are used up.",
    )
    reaper_interval_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="How often one worker looks for stale jobs, unqueued jobs and expired ones.",
    )
    outbox_grace_s: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="A pending job unchanged for this long and missing from the Redis queue "
        "is queued again (Redis was down at submit, or lost its data).",
    )
    shutdown_grace_s: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="On SIGTERM a worker lets running jobs finish this long, then hands "
        "the rest back without counting the attempt.",
    )
    persist_deadline_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="How long a worker keeps retrying an event Postgres would not take.",
    )
    metadata_max_bytes: int = Field(
        65_536,
        ge=256,
        le=16 * 1_048_576,
        description="A job's metadata, as JSON, at most; job code setting more gets an error.",
    )
    stream_chunk_max_bytes: int = Field(
        65_536,
        ge=256,
        le=16 * 1_048_576,
        description="One write to a job's stream (UTF-8) at most; more is an error to job code.",
    )
    stream_max_chars: int = Field(
        16 * 1_048_576,
        ge=1024,
        le=1 << 30,
        description="A job's stream, over all its writes, at most (characters); more is an "
        "error to job code.",
    )
    progress_window_ms: float = Field(
        50.0,
        ge=0,
        le=60_000,
        description="A job's progress reports are stored at most once per window, the latest "
        "winning; every step, status and other event is stored (0: every report is).",
    )
    gather_wait_ms: float = Field(
        2.0,
        ge=0,
        le=100,
        description="Under a stream of submits (a web process) or claims (a worker), one that "
        "finds none in flight waits this long for others to share its statement; a quiet "
        "process never waits (0: never).",
    )
    stream_flush_ms: float = Field(
        50.0,
        gt=0,
        le=60_000,
        description="A stream's writes are stored and sent together, one event, at most this "
        "long after the first of them (a worker killed loses at most this window).",
    )
    stream_flush_bytes: int = Field(
        16_384,
        ge=1,
        le=16 * 1_048_576,
        description="A stream's buffer is flushed at once when it holds this many bytes.",
    )
    run_steps_max: int = Field(
        1000,
        ge=1,
        le=10_000,
        description="Steps job code may add at run time, per attempt.",
    )
    retention_completed_days: float = Field(
        30.0,
        gt=0,
        description="Completed jobs and their events are deleted this long after they end.",
    )
    retention_failed_days: float = Field(
        7.0,
        gt=0,
        description="Failed jobs are deleted this long after they end.",
    )
    retention_cancelled_days: float = Field(
        7.0,
        gt=0,
        description="Cancelled jobs are deleted this long after they end.",
    )
    webhook_hosts: str = Field(
        "",
        description="Comma-separated hosts completion webhooks may call. Unset: any host "
        "whose addresses are all public (no loopback, private or link-local targets).",
    )
    schedules: list[Schedule] = Field(
        default_factory=list,
        description='Recurring jobs, a JSON list: [{"name", "cron", "type", "input"}].',
    )
    webhook_retry_base_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Wait before a webhook's second try; each later wait doubles, up to 1 h.",
    )
    audit_hosts: str = Field(
        "",
        description="Comma-separated hosts site_audit may crawl although they are not "
        "public (e.g. an intranet host). Unset: public hosts only.",
    )
    job_modules: str = Field(
        "",
        description="Comma-separated Python modules whose JOB_TYPES are registered beside "
        "the built-in ones (e.g. myapp.jobs).",
    )

    @field_validator("schedules", mode="before")
    @classmethod
    def _schedules_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            return orjson.loads(value) if value.strip() else []
        return value

    @property
    def webhook_host_set(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.webhook_hosts.split(",") if h.strip())

    @property
    def job_module_list(self) -> list[str]:
        return [m.strip() for m in self.job_modules.split(",") if m.strip()]
