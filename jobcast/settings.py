"""Every setting of jobcast, read once from the environment into a frozen object."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobcast.errors import ConfigError
from jobcast.schedules import Schedule

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "schema.sql"

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

# Keys the `jobcast` command line reads (which server, which token); the service ignores them.
_CLIENT_KEYS = {"JOBCAST_URL", "JOBCAST_TOKEN"}

# Environment keys read without the JOBCAST_ prefix, as platforms set them.
_UNPREFIXED = {"DATABASE_URL", "REDIS_URL", "HOST", "PORT"}


def redact_url(url: str | None) -> str | None:
    """The URL with any password replaced by ***, for logs and reprs."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0] + ":***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}"))


class Settings(BaseSettings):
    """jobcast's configuration. Each field is set by JOBCAST_ and its name in capitals
    (DATABASE_URL, REDIS_URL, HOST and PORT without the prefix): see `env_key`."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    database_url: str | None = Field(
        None,
        description="Postgres URL. Unset: 127.0.0.1:5432, else an embedded server.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL. Unset: 127.0.0.1:6379, else an embedded server.",
    )
    host: str = Field(
        "127.0.0.1",
        description="Address the web process listens on.",
    )
    port: int = Field(
        8000,
        ge=1,
        le=65535,
        description="Port the web process listens on.",
    )
    embedded: bool = Field(
        False,
        description="Start embedded Postgres and Redis even where local ones answer.",
    )
    data_dir: Path = Field(
        ROOT / ".jobcast",
        description="Where the embedded servers keep their data.",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Opens the admin endpoints and /admin; unset, they are off.",
    )
    operator_token: SecretStr | None = Field(
        None,
        description="A read-only admin token: sees every admin page and endpoint, acts on none.",
    )
    redis_prefix: str = Field(
        "jobcast",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Prefix of the queue and channel names, so several installs share a Redis.",
    )
    worker_concurrency: int = Field(
        50,
        ge=1,
        le=10_000,
        description="Jobs one worker process runs at once.",
    )
    ws_queue_size: int = Field(
        256,
        ge=8,
        le=100_000,
        description="Events buffered per websocket; a client further behind is dropped.",
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
    pubsub_grace_ms: int = Field(
        100,
        ge=0,
        le=10_000,
        description="How long a NOTIFY waits for the same event over Redis before it is read "
        "from Postgres instead.",
    )
    heartbeat_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often a worker confirms each running job; also how soon a cancel "
        "reaches a running job.",
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
    allowed_origins: str = Field(
        "",
        description="Comma-separated origins (https://app.example.com) whose pages may act with "
        "the session cookie (state-changing requests, websockets), besides the service's own.",
    )
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        le=1 << 30,
        description="Larger request bodies get 413 before they are read whole.",
    )
    max_upload_bytes: int = Field(
        10 * 1_048_576,
        ge=1024,
        le=1 << 31,
        description="Largest POST /api/uploads body (all its files together).",
    )
    max_upload_bytes_per_owner: int = Field(
        100 * 1_048_576,
        ge=1024,
        le=1 << 40,
        description="Bytes of uploads one owner may keep; beyond it, 413. An upload is freed "
        "with its job, or after a day when no job took it.",
    )
    upload_rate_per_min: float = Field(
        30,
        gt=0,
        le=1_000_000,
        description="Upload requests per owner per minute, kept in Redis across server processes.",
    )
    upload_burst: int = Field(
        10,
        ge=1,
        le=1_000_000,
        description="Upload requests one owner may make at once before the rate applies.",
    )
    max_active_per_owner: int = Field(
        5,
        ge=1,
        le=1_000_000,
        description="Pending plus running jobs one owner may have; beyond it, 429.",
    )
    app_key_max_active: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Pending plus running jobs one app key may have (its jobs for all its "
        "users together); beyond it, 429.",
    )
    token_max_ttl_s: float = Field(
        86_400,
        gt=0,
        le=30 * 86_400,
        description="The longest a browser token minted from an app key may live (its exp "
        "from now); a token meant to live longer is refused.",
    )
    submit_rate_per_min: float = Field(
        120,
        gt=0,
        le=1_000_000,
        description="Submits per owner per minute, kept in Redis across server processes.",
    )
    submit_burst: int = Field(
        20,
        ge=1,
        le=1_000_000,
        description="Submits one owner may make at once before the rate applies.",
    )
    session_rate_per_min: float = Field(
        30,
        gt=0,
        le=1_000_000,
        description="New sessions per client address per minute.",
    )
    session_burst: int = Field(
        10,
        ge=1,
        le=1_000_000,
        description="New sessions one address may make at once before the rate applies.",
    )
    max_sockets_per_owner: int = Field(
        20,
        ge=1,
        le=100_000,
        description="Open websockets per owner, per web process.",
    )
    max_sockets_per_address: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Open websockets per client address, per web process; beyond it, 429.",
    )
    max_sockets: int = Field(
        20_000,
        ge=1,
        le=1_000_000,
        description="Open websockets per web process; beyond it, 429.",
    )
    auth_failure_rate_per_min: float = Field(
        30,
        gt=0,
        le=1_000_000,
        description="Failed authentications (unknown tokens) per client address per minute; "
        "beyond it, 429.",
    )
    auth_failure_burst: int = Field(
        20,
        ge=1,
        le=1_000_000,
        description="Failed authentications one address may make at once before the rate applies.",
    )
    max_header_bytes: int = Field(
        32 * 1024,
        ge=1024,
        le=1 << 24,
        description="Request line and headers together, in bytes; beyond it, 431.",
    )
    max_headers: int = Field(
        100,
        ge=10,
        le=10_000,
        description="Request headers at most; beyond it, 431.",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="A connection must send a request's headers whole within this time.",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="A request body that sends nothing for this long is dropped.",
    )
    trusted_proxies: str = Field(
        "127.0.0.1",
        description="Comma-separated addresses (or networks, or *) whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed; empty: none.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="When set, GET /metrics needs Authorization: Bearer <this>.",
    )
    metrics_cache_s: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="How long /metrics reuses the install-wide numbers it read from "
        "Postgres and Redis.",
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
    pg_pool_max: int = Field(
        10,
        ge=1,
        le=500,
        description="Postgres connections per process at most.",
    )
    listen_database_url: str | None = Field(
        None,
        description="Postgres URL of the web process's LISTEN connection, when DATABASE_URL "
        "goes through a pooler that cannot LISTEN. Unset: DATABASE_URL.",
    )
    pg_statement_cache_size: int = Field(
        100,
        ge=0,
        le=10_000,
        description="Prepared statements asyncpg keeps per Postgres connection. 0 behind "
        "PgBouncer in transaction mode (before 1.21, it does not carry prepared statements).",
    )
    pg_connect_timeout_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="How long opening a Postgres connection may take.",
    )
    pg_command_timeout_s: float = Field(
        30.0,
        gt=0,
        le=86_400,
        description="A Postgres statement without an answer for this long fails; the caller "
        "takes Postgres for unavailable (a job's report is kept and written again).",
    )
    listen_ping_timeout_s: float = Field(
        3.0,
        gt=0,
        le=300,
        description="The LISTEN connection is pinged every 2 s; a ping unanswered for this "
        "long drops it, and it is opened again.",
    )
    redis_connect_timeout_s: float = Field(
        2.0,
        gt=0,
        le=300,
        description="How long opening a Redis connection may take.",
    )
    redis_timeout_s: float = Field(
        2.0,
        gt=0,
        le=300,
        description="A Redis command without an answer for this long fails, and the process "
        "takes Redis for down until a probe answers (see JOBCAST_REDIS_PROBE_INTERVAL_S).",
    )
    redis_publish_timeout_s: float = Field(
        1.0,
        gt=0,
        le=300,
        description="How long a batch of events may wait for Redis to take it; then NOTIFY "
        "carries it and Redis is taken for down. Jobs never wait for it.",
    )
    redis_probe_interval_s: float = Field(
        1.0,
        gt=0,
        le=300,
        description="While Redis is taken for down, it is probed (PING) this often, each "
        "probe given this long; the first answer ends the outage. Meanwhile Redis calls "
        "fail at once and events go over NOTIFY.",
    )
    tcp_keepalive_s: int = Field(
        30,
        ge=1,
        le=7200,
        description="An idle Redis or Postgres connection is probed by TCP keepalive after "
        "this many seconds, then every third of it; three unanswered probes close it, and so "
        "does data left unacknowledged for twice this long.",
    )
    log_format: str = Field(
        "text",
        pattern=r"^(text|json)$",
        description="text, or json: one JSON object per line.",
    )
    access_log: bool = Field(
        True,
        description=(
            "One log line per HTTP request (method, path, status, time, request id; "
            "for a submit, the job it made)."
        ),
    )
    log_level: str = Field(
        "INFO",
        pattern=r"^(DEBUG|INFO|WARNING|ERROR)$",
        description="DEBUG, INFO, WARNING or ERROR.",
    )

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: Any, init_settings: Any, *_args: Any, **_kwargs: Any
    ) -> Any:
        # load_settings reads the environment itself, so that unknown keys are caught
        return (init_settings,)

    @field_validator("schedules", mode="before")
    @classmethod
    def _schedules_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            return orjson.loads(value) if value.strip() else []
        return value

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            if key in ("database_url", "listen_database_url", "redis_url"):
                value = redact_url(value)
            yield key, value

    @property
    def database_dsn(self) -> str:
        return self.database_url or DEFAULT_DATABASE_URL

    @property
    def listen_dsn(self) -> str:
        return self.listen_database_url or self.database_dsn

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or DEFAULT_REDIS_URL

    @property
    def webhook_host_set(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.webhook_hosts.split(",") if h.strip())

    @property
    def job_module_list(self) -> list[str]:
        return [m.strip() for m in self.job_modules.split(",") if m.strip()]

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()
        )

    @property
    def queue_name(self) -> str:
        return f"{self.redis_prefix}:queue"

    def job_channel(self, job_id: object) -> str:
        return f"{self.redis_prefix}:job:{job_id}"

    def owner_channel(self, owner_id: object) -> str:
        return f"{self.redis_prefix}:owner:{owner_id}"


def env_key(field: str) -> str:
    """The environment key that sets a field: JOBCAST_ and its name, or the platform's name."""
    upper = field.upper()
    return upper if upper in _UNPREFIXED else f"JOBCAST_{upper}"


def _env_keys() -> dict[str, str]:
    """Environment key → field name, for every field."""
    return {env_key(name): name for name in Settings.model_fields}


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the settings; raise ConfigError naming the key for a bad value or an unknown key."""
    env = dict(os.environ if environ is None else environ)
    known = _env_keys()
    unknown = sorted(
        k for k in env if k.startswith("JOBCAST_") and k not in known and k not in _CLIENT_KEYS
    )
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]}: known ones are {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {
        known[k]: v for k, v in env.items() if k in known and (v != "" or k not in _UNPREFIXED)
    }
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        key = env_key(field) if field in Settings.model_fields else field
        raise ConfigError(f"{key}: {first['msg']} (got {first.get('input')!r})") from exc


def settings_or_exit(process: str) -> Settings:
    """The settings, or exit 2 with one line naming the bad key: what each process starts with."""
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"jobcast {process}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def markdown_table() -> str:
    """The settings as a Markdown table: docs/configuration.md is this, checked by a test."""
    rows = ["| environment key | default | what |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        if name == "data_dir":
            default = "./.jobcast"
        shown = "(none)" if default in (None, "", []) else f"`{default}`"
        what = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{env_key(name)}` | {shown} | {what} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
