"""Every setting of jobcast, read once from the environment into a frozen object."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
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
    """jobcast's configuration. Each field's alias is the environment key that sets it."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="Postgres URL. Unset: 127.0.0.1:5432, else an embedded server.",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="Redis URL. Unset: 127.0.0.1:6379, else an embedded server.",
    )
    host: str = Field(
        "127.0.0.1",
        validation_alias=AliasChoices("HOST", "host"),
        description="Address the web process listens on.",
    )
    port: int = Field(
        8000,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("PORT", "port"),
        description="Port the web process listens on.",
    )
    embedded: bool = Field(
        False,
        validation_alias=AliasChoices("JOBCAST_EMBEDDED", "embedded"),
        description="Start embedded Postgres and Redis even where local ones answer.",
    )
    data_dir: Path = Field(
        ROOT / ".jobcast",
        validation_alias=AliasChoices("JOBCAST_DATA_DIR", "data_dir"),
        description="Where the embedded servers keep their data.",
    )
    admin_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("JOBCAST_ADMIN_TOKEN", "admin_token"),
        description="Opens the admin endpoints and /admin; unset, they are off.",
    )
    redis_prefix: str = Field(
        "jobcast",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        validation_alias=AliasChoices("JOBCAST_REDIS_PREFIX", "redis_prefix"),
        description="Prefix of the queue and channel names, so several installs share a Redis.",
    )
    worker_concurrency: int = Field(
        50,
        ge=1,
        le=10_000,
        validation_alias=AliasChoices("JOBCAST_WORKER_CONCURRENCY", "worker_concurrency"),
        description="Jobs one worker process runs at once.",
    )
    ws_queue_size: int = Field(
        256,
        ge=8,
        le=100_000,
        validation_alias=AliasChoices("JOBCAST_WS_QUEUE_SIZE", "ws_queue_size"),
        description="Events buffered per websocket; a client further behind is dropped.",
    )
    retry_base_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        validation_alias=AliasChoices("JOBCAST_RETRY_BASE_S", "retry_base_s"),
        description="First retry delay; each later one doubles, with jitter.",
    )
    retry_max_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        validation_alias=AliasChoices("JOBCAST_RETRY_MAX_S", "retry_max_s"),
        description="Longest wait between retries.",
    )
    pubsub_grace_ms: int = Field(
        100,
        ge=0,
        le=10_000,
        validation_alias=AliasChoices("JOBCAST_PUBSUB_GRACE_MS", "pubsub_grace_ms"),
        description="How long a NOTIFY waits for the same event over Redis before it is read "
        "from Postgres instead.",
    )
    heartbeat_s: float = Field(
        1.0,
        gt=0,
        le=60,
        validation_alias=AliasChoices("JOBCAST_HEARTBEAT_S", "heartbeat_s"),
        description="How often a worker confirms each running job; also how soon a cancel "
        "reaches a running job.",
    )
    stale_after_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        validation_alias=AliasChoices("JOBCAST_STALE_AFTER_S", "stale_after_s"),
        description="A running job without a heartbeat for this long lost its worker: "
        "it is retried, or failed when its attempts are used up.",
    )
    reaper_interval_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        validation_alias=AliasChoices("JOBCAST_REAPER_INTERVAL_S", "reaper_interval_s"),
        description="How often one worker looks for stale jobs, unqueued jobs and expired ones.",
    )
    outbox_grace_s: float = Field(
        5.0,
        ge=0,
        le=3600,
        validation_alias=AliasChoices("JOBCAST_OUTBOX_GRACE_S", "outbox_grace_s"),
        description="A pending job unchanged for this long and missing from the Redis queue "
        "is queued again (Redis was down at submit, or lost its data).",
    )
    shutdown_grace_s: float = Field(
        10.0,
        ge=0,
        le=3600,
        validation_alias=AliasChoices("JOBCAST_SHUTDOWN_GRACE_S", "shutdown_grace_s"),
        description="On SIGTERM a worker lets running jobs finish this long, then hands "
        "the rest back without counting the attempt.",
    )
    persist_deadline_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        validation_alias=AliasChoices("JOBCAST_PERSIST_DEADLINE_S", "persist_deadline_s"),
        description="How long a worker keeps retrying an event Postgres would not take.",
    )
    retention_completed_days: float = Field(
        30.0,
        gt=0,
        validation_alias=AliasChoices(
            "JOBCAST_RETENTION_COMPLETED_DAYS", "retention_completed_days"
        ),
        description="Completed jobs and their events are deleted this long after they end.",
    )
    retention_failed_days: float = Field(
        7.0,
        gt=0,
        validation_alias=AliasChoices("JOBCAST_RETENTION_FAILED_DAYS", "retention_failed_days"),
        description="Failed jobs are deleted this long after they end.",
    )
    retention_cancelled_days: float = Field(
        7.0,
        gt=0,
        validation_alias=AliasChoices(
            "JOBCAST_RETENTION_CANCELLED_DAYS", "retention_cancelled_days"
        ),
        description="Cancelled jobs are deleted this long after they end.",
    )
    allowed_origins: str = Field(
        "",
        validation_alias=AliasChoices("JOBCAST_ALLOWED_ORIGINS", "allowed_origins"),
        description="Comma-separated origins (https://app.example.com) whose pages may open "
        "cookie-authenticated websockets, besides the service's own.",
    )
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        le=1 << 30,
        validation_alias=AliasChoices("JOBCAST_MAX_BODY_BYTES", "max_body_bytes"),
        description="Larger request bodies get 413 before they are read whole.",
    )
    max_upload_bytes: int = Field(
        10 * 1_048_576,
        ge=1024,
        le=1 << 31,
        validation_alias=AliasChoices("JOBCAST_MAX_UPLOAD_BYTES", "max_upload_bytes"),
        description="Largest POST /api/uploads body (all its files together).",
    )
    max_active_per_owner: int = Field(
        5,
        ge=1,
        le=1_000_000,
        validation_alias=AliasChoices("JOBCAST_MAX_ACTIVE_PER_OWNER", "max_active_per_owner"),
        description="Pending plus running jobs one owner may have; beyond it, 429.",
    )
    submit_rate_per_min: float = Field(
        120,
        gt=0,
        le=1_000_000,
        validation_alias=AliasChoices("JOBCAST_SUBMIT_RATE_PER_MIN", "submit_rate_per_min"),
        description="Submits per owner per minute, kept in Redis across server processes.",
    )
    submit_burst: int = Field(
        20,
        ge=1,
        le=1_000_000,
        validation_alias=AliasChoices("JOBCAST_SUBMIT_BURST", "submit_burst"),
        description="Submits one owner may make at once before the rate applies.",
    )
    session_rate_per_min: float = Field(
        30,
        gt=0,
        le=1_000_000,
        validation_alias=AliasChoices("JOBCAST_SESSION_RATE_PER_MIN", "session_rate_per_min"),
        description="New sessions per client address per minute.",
    )
    session_burst: int = Field(
        10,
        ge=1,
        le=1_000_000,
        validation_alias=AliasChoices("JOBCAST_SESSION_BURST", "session_burst"),
        description="New sessions one address may make at once before the rate applies.",
    )
    max_sockets_per_owner: int = Field(
        20,
        ge=1,
        le=100_000,
        validation_alias=AliasChoices("JOBCAST_MAX_SOCKETS_PER_OWNER", "max_sockets_per_owner"),
        description="Open websockets per owner, per web process.",
    )
    webhook_hosts: str = Field(
        "",
        validation_alias=AliasChoices("JOBCAST_WEBHOOK_HOSTS", "webhook_hosts"),
        description="Comma-separated hosts completion webhooks may call. Unset: any host "
        "whose addresses are all public (no loopback, private or link-local targets).",
    )
    schedules: list[Schedule] = Field(
        default_factory=list,
        validation_alias=AliasChoices("JOBCAST_SCHEDULES", "schedules"),
        description='Recurring jobs, a JSON list: [{"name", "cron", "type", "input"}].',
    )
    webhook_retry_base_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        validation_alias=AliasChoices("JOBCAST_WEBHOOK_RETRY_BASE_S", "webhook_retry_base_s"),
        description="Wait before a webhook's second try; each later wait doubles, up to 1 h.",
    )
    audit_hosts: str = Field(
        "",
        validation_alias=AliasChoices("JOBCAST_AUDIT_HOSTS", "audit_hosts"),
        description="Comma-separated hosts site_audit may crawl although they are not "
        "public (e.g. an intranet host). Unset: public hosts only.",
    )
    job_modules: str = Field(
        "",
        validation_alias=AliasChoices("JOBCAST_JOB_MODULES", "job_modules"),
        description="Comma-separated Python modules whose JOB_TYPES are registered beside "
        "the built-in ones (e.g. myapp.jobs).",
    )
    pg_pool_max: int = Field(
        10,
        ge=1,
        le=500,
        validation_alias=AliasChoices("JOBCAST_PG_POOL_MAX", "pg_pool_max"),
        description="Postgres connections per process at most.",
    )
    log_format: str = Field(
        "text",
        pattern=r"^(text|json)$",
        validation_alias=AliasChoices("JOBCAST_LOG_FORMAT", "log_format"),
        description="text, or json: one JSON object per line.",
    )
    access_log: bool = Field(
        True,
        validation_alias=AliasChoices("JOBCAST_ACCESS_LOG", "access_log"),
        description=(
            "One log line per HTTP request (method, path, status, time, request id; "
            "for a submit, the job it made)."
        ),
    )
    log_level: str = Field(
        "INFO",
        pattern=r"^(DEBUG|INFO|WARNING|ERROR)$",
        validation_alias=AliasChoices("JOBCAST_LOG_LEVEL", "log_level"),
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
            if key in ("database_url", "redis_url"):
                value = redact_url(value)
            yield key, value

    @property
    def database_dsn(self) -> str:
        return self.database_url or DEFAULT_DATABASE_URL

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


def _known_env_keys() -> set[str]:
    keys: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            keys.update(str(choice) for choice in alias.choices if str(choice).isupper())
    return keys


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the settings; raise ConfigError naming the key for a bad value or an unknown key."""
    env = dict(os.environ if environ is None else environ)
    known = _known_env_keys()
    unknown = sorted(
        k for k in env if k.startswith("JOBCAST_") and k not in known and k not in _CLIENT_KEYS
    )
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]}: known ones are {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {k: v for k, v in env.items() if k in known or k in _UNPREFIXED}
    values = {k: v for k, v in values.items() if v != "" or k not in _UNPREFIXED}
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        env_key = next((str(c) for c in _aliases(field) if str(c).isupper()), field)
        raise ConfigError(f"{env_key}: {first['msg']} (got {first.get('input')!r})") from exc


def _aliases(field: str) -> list[object]:
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and (name == field or field in alias.choices):
            return list(alias.choices)
    return [field]


def markdown_table() -> str:
    """The settings as a Markdown table: docs/configuration.md is this, checked by a test."""
    rows = ["| environment key | default | what |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        keys = [str(c) for c in _aliases(name) if str(c).isupper()]
        default = info.get_default(call_default_factory=True)
        if name == "data_dir":
            default = "./.jobcast"
        shown = "(none)" if default in (None, "", []) else f"`{default}`"
        what = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{keys[0] if keys else name}` | {shown} | {what} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
