"""The commands that act on this machine: run the service's processes, migrate, clean up.

``dev``, ``web``, ``worker``, ``migrate``, ``cleanup`` and ``config`` read the
service's settings from the environment, as the web and worker processes do;
the client's own keys (``JOBCAST_URL``, ``JOBCAST_TOKEN``) are kept out of them.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from jobcast.cli.console import CliError, Exit, stdout
from jobcast.cli.target import (
    ADMIN_TOKEN_ENV,
    CLIENT_ENV_KEYS,
    PUBLIC_URL_ENV,
    TOKEN_ENV,
    URL_ENV,
    Target,
)

commands = typer.Typer()


def service_settings() -> Any:
    """The service's settings, read without the client's own environment keys.

    They are also dropped from this process's environment, so the processes it
    starts (dev, web, worker) do not meet keys they do not know.
    """
    from jobcast.settings import load_settings

    for key in CLIENT_ENV_KEYS:
        os.environ.pop(key, None)
    return load_settings()


@commands.command()
def dev() -> None:
    """Run web and worker together, finding or starting Postgres and Redis (`make run`)."""
    service_settings()
    from jobcast import dev as dev_mode

    raise typer.Exit(dev_mode.main())


@commands.command()
def web() -> None:
    """Run the web process (uvicorn) on HOST:PORT."""
    from jobcast.dev import web_command

    command = web_command(service_settings())
    os.execv(command[0], command)


@commands.command()
def worker() -> None:
    """Run a worker process."""
    from jobcast.dev import worker_command

    service_settings()
    command = worker_command()
    os.execv(command[0], command)


@commands.command()
def migrate(
    prefix_moved: Annotated[
        bool,
        typer.Option(
            "--redis-prefix-moved",
            help="This install now uses JOBCAST_REDIS_PREFIX: record it as the database's "
            "(stop every process with the old prefix first).",
        ),
    ] = False,
) -> None:
    """Apply schema.sql to DATABASE_URL; applying it twice is harmless."""
    import asyncpg

    from jobcast.settings import redact_url
    from jobcast.store import Store, apply_schema

    settings = service_settings()

    async def apply() -> None:
        await apply_schema(settings.database_dsn)
        if prefix_moved:
            async with Store.open(settings.database_dsn, max_size=1) as store:
                await store.move_install(settings.redis_prefix)

    try:
        asyncio.run(apply())
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CliError(
            f"cannot apply the schema at {redact_url(settings.database_dsn)}: {exc}",
            Exit.UNAVAILABLE,
        ) from exc
    typer.echo(f"schema applied to {redact_url(settings.database_dsn)}")
    if prefix_moved:
        typer.echo(f"the install's Redis prefix is now {settings.redis_prefix!r}")


@commands.command()
def cleanup() -> None:
    """Delete finished jobs older than their retention (JOBCAST_RETENTION_*_DAYS)."""
    from jobcast.store import Store

    settings = service_settings()

    async def delete() -> int:
        async with Store.open(settings.database_dsn, max_size=1) as store:
            return await store.delete_expired(
                settings.retention_completed_days,
                settings.retention_failed_days,
                settings.retention_cancelled_days,
            )

    typer.echo(f"deleted {asyncio.run(delete())} finished jobs past their retention")


@commands.command()
def config(ctx: typer.Context) -> None:
    """Show the effective settings, with passwords and tokens hidden."""
    from pydantic import SecretStr

    from jobcast.settings import env_key, load_settings

    settings = load_settings({k: v for k, v in os.environ.items() if k not in CLIENT_ENV_KEYS})
    table = Table("setting", "value", box=None)
    # the repr's arguments are the redacted view: URLs without their passwords
    for name, value in settings.__repr_args__():
        key = env_key(str(name))
        if isinstance(value, SecretStr) or key == ADMIN_TOKEN_ENV:
            value = "set (hidden)" if value else "not set"
        table.add_row(key, escape("not set" if value in (None, "") else str(value)))
    target: Target = ctx.obj
    table.add_row(URL_ENV, escape(target.url))
    table.add_row(PUBLIC_URL_ENV, escape(target.public_url or f"not set ({URL_ENV})"))
    saved = target.tokens.get(target.url)
    where = (
        "given (hidden)"
        if target.token
        else f"saved in {target.tokens.path} (hidden)"
        if saved
        else "none yet"
    )
    table.add_row(TOKEN_ENV, escape(where))
    stdout().print(table)


keys = typer.Typer(help="App keys: server-to-server credentials for a web app's backend.")
commands.add_typer(keys, name="keys")


def _with_store(action: Any) -> Any:
    """Run ``action(store)`` against the service's database (DATABASE_URL)."""
    from jobcast.store import Store

    settings = service_settings()

    async def run() -> Any:
        async with Store.open(settings.database_dsn, max_size=1) as store:
            return await action(store)

    return asyncio.run(run())


@keys.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="What the key is for (the app's name)."),
) -> None:
    """Make an app key; its key and signing secret are shown once, never again."""
    if not name.strip() or len(name) > 100:
        raise CliError("--name: 1 to 100 characters", Exit.USAGE)
    made = _with_store(lambda store: store.create_app_key(name.strip()))
    typer.echo(f"id:             {made.key.id}")
    typer.echo(f"name:           {made.key.name}")
    typer.echo(f"key:            {made.bearer}")
    typer.echo(f"signing secret: {made.signing_secret}")
    typer.echo(
        "Keep both secret, on the app's backend: the key as `Authorization: Bearer` on its "
        "calls, the signing secret to mint browser tokens (HS256, kid = the id)."
    )


@keys.command("list")
def keys_list() -> None:
    """The app keys, oldest first (never their secrets)."""
    table = Table("id", "name", "created", "revoked", box=None)
    for key in _with_store(lambda store: store.app_keys()):
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
        table.add_row(
            key.id, escape(key.name), key.created_at.isoformat(timespec="seconds"), revoked
        )
    stdout().print(table)


@keys.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (ak_...).")) -> None:
    """Revoke an app key: it, and every browser token minted from it, is refused at once."""
    key = _with_store(lambda store: store.revoke_app_key(key_id))
    if key is None:
        raise CliError(f"no app key {key_id!r} (see: jobcast keys list)", Exit.USAGE)
    typer.echo(f"revoked {key.id} ({key.name})")


limits = typer.Typer(help="Run-time limits of concurrency keys and throttles.")
commands.add_typer(limits, name="limits")


@limits.command("set")
def limits_set(
    key: str = typer.Argument(..., help="The key (tenant:42, or type:NAME for a job type)."),
    limit: int = typer.Argument(..., help="At most this many at once (or starts per period)."),
    per: float | None = typer.Option(
        None, "--per", help="A throttle instead: at most LIMIT starts per this many seconds."
    ),
) -> None:
    """Set a key's limit for every job holding it, from each job's next start (no restart);
    jobs parked on it that now have room start within the sweep's interval."""
    from pydantic import ValidationError

    from jobcast.concurrency import KeyName, Kind, LimitIn

    try:
        name = KeyName(key=key).key
        wanted = LimitIn(limit=limit, period_s=per)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CliError(f"{first['loc'][0]}: {first['msg']}", Exit.USAGE) from None
    kind: Kind = "concurrency" if per is None else "throttle"
    row = _with_store(
        lambda store: store.set_key_limit(name, kind, wanted.limit, wanted.period_s, "cli")
    )
    every = f" per {row.period_s:g} s" if row.period_s else " at once"
    typer.echo(f"{row.key}: at most {row.limit}{every} ({row.kind})")


@limits.command("list")
def limits_list() -> None:
    """The run-time limits, with each key's running and parked jobs now."""
    table = Table("key", "kind", "limit", "per", "running", "parked", "set by", box=None)
    for row in _with_store(lambda store: store.key_limits()):
        table.add_row(
            escape(row.key),
            row.kind,
            str(row.limit),
            f"{row.period_s:g} s" if row.period_s else "",
            "" if row.running is None else str(row.running),
            str(row.parked),
            escape(row.set_by),
        )
    stdout().print(table)


@limits.command("clear")
def limits_clear(
    key: str = typer.Argument(..., help="The key whose run-time limits to drop."),
) -> None:
    """Drop a key's run-time limits: the limits its jobs declared apply again."""
    if not _with_store(lambda store: store.clear_key_limit(key)):
        raise CliError(f"no run-time limit for {key!r} (see: jobcast limits list)", Exit.USAGE)
    typer.echo(f"{key}: run-time limits cleared")
