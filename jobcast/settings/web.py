"""Settings of the web process: address, tokens, origins, proxies, request bounds, logs."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class WebSettings(BaseModel):
    """Settings of the web process: where it listens, who may call it, how it logs."""

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
    admin_token: SecretStr | None = Field(
        None,
        description="Opens the admin endpoints and /admin; unset, they are off.",
    )
    operator_token: SecretStr | None = Field(
        None,
        description="A read-only admin token: sees every admin page and endpoint, acts on none.",
    )
    ws_queue_size: int = Field(
        256,
        ge=8,
        le=100_000,
        description="Events buffered per websocket; a client further behind is dropped.",
    )
    ws_send_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="A websocket whose client reads nothing of what waits for it for this long "
        "is dropped.",
    )
    pubsub_grace_ms: int = Field(
        100,
        ge=0,
        le=10_000,
        description="How long a NOTIFY's hint (the ids of an event too large for NOTIFY to "
        "carry) waits for the same event over Redis before it is read from Postgres instead.",
    )
    allowed_origins: str = Field(
        "",
        description="Comma-separated origins (https://app.example.com) whose pages may act with "
        "the session cookie (state-changing requests, websockets), besides the service's own.",
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
    keep_alive_s: int = Field(
        20,
        ge=1,
        le=3600,
        description="An idle keep-alive connection is closed after this long. Keep it longer "
        "than clients keep one (httpx 5 s, aiohttp 15 s) and than the idle timeout of a load "
        "balancer in front: else a request can be sent just as the connection closes.",
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

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()
        )
