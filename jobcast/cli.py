"""``jobcast``: run the service's processes, and submit, follow and manage jobs from a shell.

Two kinds of commands share this one entry point. ``dev``, ``web``, ``worker``,
``migrate``, ``cleanup`` and ``config`` act on this machine and read the service's
settings from the environment. ``submit``, ``watch``, ``jobs``, ``show``, ``cancel``,
``types`` and ``stats`` are clients of a running server at ``--url``.

Every error is one line on stderr and a non-zero exit code (see ``Exit``), so
scripts can tell a failed job from a refused request or an unreachable server.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

# typer carries its own copy of click; its errors are what a bad command line raises
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from jobcast.client import (
    ApiError,
    Client,
    Event,
    Job,
    NotFound,
    Unauthorized,
    Unavailable,
    Unreachable,
)
from jobcast.errors import ConfigError, JobcastError, ServiceUnavailable, StorageUnavailable

URL_ENV = "JOBCAST_URL"
TOKEN_ENV = "JOBCAST_TOKEN"
ADMIN_TOKEN_ENV = "JOBCAST_ADMIN_TOKEN"
# the client's own keys: the service's settings do not know them
CLIENT_ENV_KEYS = (URL_ENV, TOKEN_ENV)
DEFAULT_URL = "http://127.0.0.1:8000"


class Exit(enum.IntEnum):
    """The exit codes, as docs/cli.md lists them."""

    OK = 0
    FAILED = 1  # the job ended failed; also any error not listed below
    USAGE = 2  # a bad command line or --input, or a bad setting
    JOB_CANCELLED = 3
    REFUSED = 4  # the server answered with an error: unknown job, bad input, conflict, token
    UNAVAILABLE = 5  # the server, Postgres or Redis does not answer
    INTERRUPTED = 130


class CliError(JobcastError):
    """An error already worded for the command line, with its exit code."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TokenFile:
    """Owner tokens this machine created, one per server URL, readable by this user only."""

    path: Path

    @classmethod
    def default(cls) -> TokenFile:
        config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return cls(Path(config_home) / "jobcast" / "tokens.json")

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {self.path}: {exc}", Exit.USAGE) from exc
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def get(self, url: str) -> str | None:
        return self._load().get(url)

    def put(self, url: str, token: str | None) -> None:
        tokens = self._load()
        if token is None:
            tokens.pop(url, None)
        else:
            tokens[url] = token
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(tokens, out, indent=2)
        os.replace(partial, self.path)


@dataclass(frozen=True)
class Target:
    """The server the client commands talk to, and how they prove who they are."""

    url: str
    token: str | None
    tokens: TokenFile


app = typer.Typer(
    name="jobcast",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Background jobs with live progress: run the service, submit and follow jobs.",
)


def stdout() -> Console:
    # piped, a table or a long line stays whole: rich would otherwise wrap it at 80 columns
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 1000)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True)


def note(message: str) -> None:
    stderr().print(escape(message), style="dim", highlight=False)


@app.callback()
def options(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option(envvar=URL_ENV, help="The server the client commands talk to.")
    ] = DEFAULT_URL,
    token: Annotated[
        str | None,
        typer.Option(
            envvar=TOKEN_ENV,
            show_default=False,
            help="Owner token. Without one, a session is created once per URL and its token "
            "kept in ~/.config/jobcast/tokens.json.",
        ),
    ] = None,
) -> None:
    ctx.obj = Target(url=url.rstrip("/"), token=token or None, tokens=TokenFile.default())


@contextmanager
def owner_client(ctx: typer.Context, job_id: str | None = None) -> Iterator[Client]:
    """A client holding an owner token: the given one, the saved one, or a new session's.

    With ``job_id``, a 404 names the job the command was about.
    """
    target: Target = ctx.obj
    token = target.token or target.tokens.get(target.url)
    saved = target.token is None and token is not None
    with Client(target.url, token) as client:
        if token is None:
            target.tokens.put(target.url, client.create_session())
            note(f"new owner session for {target.url}; its token is kept in {target.tokens.path}")
        try:
            yield client
        except NotFound as exc:
            if job_id is None:
                raise
            raise CliError(f"no job {job_id} for this token", Exit.REFUSED) from exc
        except Unauthorized as exc:
            if not saved:
                raise
            target.tokens.put(target.url, None)
            raise CliError(
                f"{target.url} no longer knows the saved token ({exc}); it is forgotten, "
                "so the next command starts a new session",
                Exit.REFUSED,
            ) from exc


# ---- client commands ------------------------------------------------------------------------


def parse_input(raw: str) -> dict[str, Any]:
    """The --input value: a JSON object, given inline or as @path."""
    text = raw
    if raw.startswith("@"):
        try:
            text = Path(raw[1:]).read_text()
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {raw[1:]}: {exc.strerror}", param_hint="'--input'"
            ) from exc
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"not valid JSON ({exc}): {raw[:60]!r}", param_hint="'--input'"
        ) from exc
    if not isinstance(value, dict):
        raise typer.BadParameter(
            f"must be a JSON object, got {type(value).__name__}", param_hint="'--input'"
        )
    return value


@app.command()
def submit(
    ctx: typer.Context,
    job_type: Annotated[str, typer.Argument(metavar="TYPE", help="The job type (see `types`).")],
    input_json: Annotated[
        str, typer.Option("--input", "-i", help="The job's input: a JSON object, or @file.json.")
    ] = "{}",
    watch: Annotated[
        bool,
        typer.Option("--watch", "-w", help="Follow the job to its end, then print its result."),
    ] = False,
    priority: Annotated[int | None, typer.Option(help="-10 to 10; higher runs first.")] = None,
    delay: Annotated[float | None, typer.Option(help="Seconds to wait before it runs.")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts before it fails.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds one attempt may take.")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key.")] = None,
) -> None:
    """Submit a job and print its id; with --watch, follow it and print its result."""
    job_input = parse_input(input_json)
    with owner_client(ctx) as client:
        submitted = client.submit(
            job_type,
            job_input,
            priority=priority,
            delay_seconds=delay,
            max_attempts=max_attempts,
            timeout_seconds=timeout,
            idempotency_key=key,
        )
        if not watch:
            typer.echo(submitted.id)
            return
        note(f"job {submitted.id} submitted")
        raise typer.Exit(follow(client, submitted.id))


@app.command("watch")
def watch_job(ctx: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Follow a job to its end with a progress bar, then print its result."""
    with owner_client(ctx, job_id) as client:
        raise typer.Exit(follow(client, job_id))


def follow(client: Client, job_id: str) -> Exit:
    """Show the job's progress live on stderr; print how it ended; the exit code for it."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.fields[step]}", style="bold", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[message]}", markup=False),
    )
    try:
        with Progress(*columns, console=stderr()) as progress:
            task = progress.add_task("job", total=100, step="", message="")
            for event in client.watch(job_id):
                progress.update(task, **changes(event))
                line = milestone(event)
                if line:
                    progress.console.print(escape(line), highlight=False)
    except KeyboardInterrupt:
        note(f"stopped watching; the job goes on: jobcast watch {job_id}")
        return Exit.INTERRUPTED
    return outcome(client.get(job_id))


def changes(event: Event) -> dict[str, Any]:
    """What one event changes on the progress bar."""
    update: dict[str, Any] = {}
    if event.progress is not None:
        update["completed"] = event.progress
    if event.step:
        update["step"] = event.step
    if event.kind == "status":
        update["message"] = event.message or event.status
    elif event.message:
        update["message"] = event.message
    return update


def milestone(event: Event) -> str | None:
    """A line worth keeping above the bar: a step that ended, a retry."""
    if event.kind == "step" and event.state in ("completed", "failed"):
        took = f" in {event.duration_ms / 1000:.1f} s" if event.duration_ms is not None else ""
        return f"{'✓' if event.state == 'completed' else '✗'} {event.step}{took}"
    if event.kind == "status" and event.status == "pending" and event.error is not None:
        return f"↻ {event.message or 'retrying'}"
    return None


def outcome(job: Job) -> Exit:
    if job.status == "completed":
        stdout().print_json(data=job.result)
        return Exit.OK
    if job.status == "cancelled":
        return fail(f"job {job.id} was cancelled", Exit.JOB_CANCELLED)
    failed_step = next((s.name for s in job.steps if s.status == "failed"), None)
    where = f" at step {failed_step}" if failed_step else ""
    reason = job.error.message if job.error else "no reason given"
    return fail(f"job {job.id} failed{where}: {reason}", Exit.FAILED)


def local_time(moment: datetime | None) -> str:
    return f"{moment.astimezone():%Y-%m-%d %H:%M:%S}" if moment else ""


_STATUS_STYLE = {
    "pending": "yellow",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def status_text(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{escape(status)}[/]"


@app.command()
def jobs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only jobs of this type.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """List your jobs, newest first."""
    with owner_client(ctx) as client:
        found = client.list(status=status, type=job_type, limit=limit)
    if as_json:
        stdout().print_json(data=[j.model_dump(mode="json") for j in found])
        return
    table = Table(box=None)
    for name in ("id", "type", "status", "progress", "step", "created"):
        table.add_column(name, no_wrap=name not in ("type", "step"))
    for job in found:
        table.add_row(
            job.id,
            escape(job.type),
            status_text(job.status),
            f"{job.progress:.0f}%",
            escape(job.step or ""),
            local_time(job.created_at),
        )
    stdout().print(table if found else "no jobs")


@app.command()
def show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """Show one job: its status, steps, and result or error."""
    with owner_client(ctx, job_id) as client:
        job = client.get(job_id)
    if as_json:
        stdout().print_json(data=job.model_dump(mode="json"))
        return
    out = stdout()
    facts = Table.grid(padding=(0, 2))
    rows: list[tuple[str, str]] = [
        ("id", job.id),
        ("type", escape(job.type)),
        ("status", status_text(job.status)),
        ("progress", f"{job.progress:.0f}%"),
        ("message", escape(job.message or "")),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("created", local_time(job.created_at)),
        ("finished", local_time(job.finished_at)),
    ]
    if job.error:
        rows.append(("error", escape(f"{job.error.message} ({job.error.category})")))
    for name, value in rows:
        facts.add_row(f"[bold]{name}[/]", value)
    out.print(facts)
    if job.steps:
        steps = Table("step", "status", "took", box=None)
        for step in job.steps:
            took = f"{step.duration_ms / 1000:.1f} s" if step.duration_ms is not None else ""
            steps.add_row(escape(step.title or step.name), status_text(step.status), took)
        out.print(steps)
    if job.status == "completed":
        out.print_json(data=job.result)


@app.command()
def cancel(ctx: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Cancel a pending or running job."""
    with owner_client(ctx, job_id) as client:
        client.cancel(job_id)
    typer.echo(f"cancelled {job_id}")


@app.command()
def types(ctx: typer.Context) -> None:
    """List the job types the server runs, with their steps."""
    with owner_client(ctx) as client:
        found = client.job_types()
    table = Table("type", "title", "steps", box=None)
    for job_type in found:
        table.add_row(
            escape(job_type.type),
            escape(job_type.title),
            escape(", ".join(s.name for s in job_type.steps)),
        )
    stdout().print(table)


@app.command()
def stats(
    ctx: typer.Context,
    admin_token: Annotated[
        str | None,
        typer.Option(envvar=ADMIN_TOKEN_ENV, show_default=False, help="The admin token."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """The operator's numbers: jobs by status and type, queue depth, failure rates."""
    if not admin_token:
        raise CliError(
            f"stats needs the admin token: --admin-token or {ADMIN_TOKEN_ENV}", Exit.USAGE
        )
    target: Target = ctx.obj
    with Client(target.url, admin_token) as client:
        numbers = client.stats()
    if as_json:
        stdout().print_json(data=numbers)
        return
    table = Table("name", "value", box=None)
    for name, value in flatten(numbers):
        table.add_row(escape(name), escape(value))
    stdout().print(table)


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Nested JSON as (dotted.name, value) rows."""
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            yield from flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, "-" if value is None else str(value)


# ---- commands for this machine --------------------------------------------------------------


def service_settings() -> Any:
    """The service's settings, read without the client's own environment keys.

    They are also dropped from this process's environment, so the processes it
    starts (dev, web, worker) do not meet keys they do not know.
    """
    from jobcast.settings import load_settings

    for key in CLIENT_ENV_KEYS:
        os.environ.pop(key, None)
    return load_settings()


@app.command()
def dev() -> None:
    """Run web and worker together, finding or starting Postgres and Redis (`make run`)."""
    service_settings()
    from jobcast import dev as dev_mode

    raise typer.Exit(dev_mode.main())


@app.command()
def web() -> None:
    """Run the web process (uvicorn) on HOST:PORT."""
    from jobcast.dev import web_command

    command = web_command(service_settings())
    os.execv(command[0], command)


@app.command()
def worker() -> None:
    """Run a worker process."""
    from jobcast.dev import worker_command

    service_settings()
    command = worker_command()
    os.execv(command[0], command)


@app.command()
def migrate() -> None:
    """Apply schema.sql to DATABASE_URL; applying it twice is harmless."""
    import asyncpg

    from jobcast.settings import redact_url
    from jobcast.store import apply_schema

    settings = service_settings()
    try:
        asyncio.run(apply_schema(settings.database_dsn))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CliError(
            f"cannot apply the schema at {redact_url(settings.database_dsn)}: {exc}",
            Exit.UNAVAILABLE,
        ) from exc
    typer.echo(f"schema applied to {redact_url(settings.database_dsn)}")


@app.command()
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


@app.command()
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


# ---- the entry point ------------------------------------------------------------------------


def exit_code_of(exc: BaseException) -> Exit:
    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, ConfigError):
        return Exit.USAGE
    if isinstance(exc, Unreachable | Unavailable | ServiceUnavailable | StorageUnavailable):
        return Exit.UNAVAILABLE
    if isinstance(exc, ApiError):
        return Exit.REFUSED
    return Exit.FAILED


def main(argv: list[str] | None = None) -> int:
    """Run one command; every error becomes one line on stderr and an exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="jobcast", standalone_mode=False)
    except NoArgsIsHelpError:
        return Exit.OK  # the help was printed
    except UsageError as exc:
        hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx else ""
        return fail(f"{exc.format_message()}{hint}", Exit.USAGE)
    except ClickException as exc:
        return fail(exc.format_message(), Exit.FAILED)
    except (typer.Abort, KeyboardInterrupt):
        return fail("interrupted", Exit.INTERRUPTED)
    except JobcastError as exc:
        return fail(str(exc), exit_code_of(exc))
    except Exception as exc:
        return fail(f"unexpected {type(exc).__name__}: {exc}", Exit.FAILED)
    return int(result) if isinstance(result, int) else Exit.OK


def fail(message: str, code: Exit) -> Exit:
    """Say what went wrong on one line of stderr; the exit code to end with."""
    one_line = " ".join(message.split())
    stderr().print(f"jobcast: {one_line}", markup=False, highlight=False)
    return code


if __name__ == "__main__":
    sys.exit(main())
