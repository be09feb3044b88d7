"""Every setting of jobcast, read once from the environment into a frozen object.

The fields are grouped by area, each group a module of its own: connections (Postgres
and Redis), web (the web process), limits (what one caller may use), jobs (running them).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobcast.errors import ConfigError
from jobcast.settings.connections import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    ROOT,
    SCHEMA_PATH,
    ConnectionSettings,
    redact_url,
)
from jobcast.settings.jobs import JobSettings
from jobcast.settings.limits import LimitSettings
from jobcast.settings.web import WebSettings

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_REDIS_URL",
    "ROOT",
    "SCHEMA_PATH",
    "Settings",
    "env_key",
    "load_settings",
    "markdown_table",
    "redact_url",
    "settings_or_exit",
]

# Keys the `jobcast` command line reads (which server, which token); the service ignores them.
_CLIENT_KEYS = {"JOBCAST_URL", "JOBCAST_TOKEN"}

# Environment keys read without the JOBCAST_ prefix, as platforms set them.
_UNPREFIXED = {"DATABASE_URL", "REDIS_URL", "HOST", "PORT"}


class Settings(JobSettings, LimitSettings, WebSettings, ConnectionSettings, BaseSettings):
    """jobcast's configuration. Each field is set by JOBCAST_ and its name in capitals
    (DATABASE_URL, REDIS_URL, HOST and PORT without the prefix): see `env_key`."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: Any, init_settings: Any, *_args: Any, **_kwargs: Any
    ) -> Any:
        # load_settings reads the environment itself, so that unknown keys are caught
        return (init_settings,)

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            if key in ("database_url", "listen_database_url", "redis_url"):
                value = redact_url(value)
            yield key, value


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
