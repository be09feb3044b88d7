"""Settings of the links to Postgres and Redis: URLs, pools, timeouts, keepalive."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMA_PATH = ROOT / "schema.sql"

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


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


class ConnectionSettings(BaseModel):
    """Where Postgres and Redis are, and how long a link may stay silent."""

    database_url: str | None = Field(
        None,
        description="Postgres URL. Unset: 127.0.0.1:5432, else an embedded server.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL. Unset: 127.0.0.1:6379, else an embedded server.",
    )
    embedded: bool = Field(
        False,
        description="Start embedded Postgres and Redis even where local ones answer.",
    )
    data_dir: Path = Field(
        ROOT / ".jobcast",
        description="Where the embedded servers keep their data.",
    )
    redis_prefix: str = Field(
        "jobcast",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Prefix of the queue and channel names, so several installs share a Redis.",
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
        description="How long one publish command (up to 500 messages) may wait for Redis to "
        "take it; then NOTIFY carries its events and those after it, and Redis is taken for "
        "down. Jobs never wait for it.",
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
    def queue_name(self) -> str:
        return f"{self.redis_prefix}:queue"

    def job_channel(self, job_id: object) -> str:
        return f"{self.redis_prefix}:job:{job_id}"

    @property
    def cancels_channel(self) -> str:
        """Where every cancelled job's event is also published, for the workers."""
        return f"{self.redis_prefix}:cancels"

    def owner_channel(self, owner_id: object) -> str:
        return f"{self.redis_prefix}:owner:{owner_id}"
