"""Limits: body and upload sizes, active jobs, submit, session and auth rates, socket caps."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LimitSettings(BaseModel):
    """What one owner, address, key or request may use: sizes, rates, caps."""

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
    debounce_max_s: float = Field(
        3600,
        gt=0,
        le=86_400,
        description="The longest a submit's debounce may hold its job back: its window "
        "(debounce.seconds) and its maximum wait from the first submit (debounce.max_seconds).",
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
