"""The commands that are clients of a running server at ``--url``.

``submit``, ``submit-batch``, ``batch``, ``watch``, ``jobs``, ``show``, ``cancel``, ``types``
and ``stats``:
each acts as the owner of ``owner_client`` (``stats`` with the admin token); and, from
``control_commands``, ``answer``, ``pause``, ``resume`` and ``start``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from jobcast.cli import control_commands
from jobcast.cli.console import CliError, Exit, note, stdout
from jobcast.cli.progress import follow
from jobcast.cli.target import ADMIN_TOKEN_ENV, Target, owner_client
from jobcast.client import Batch, Client
from jobcast.concurrency import parse_assignment, parse_throttle

commands = typer.Typer()
BATCH_POLL_S = 0.5  # how often --watch asks for a batch's state
commands.add_typer(control_commands.commands)


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
    return json_object(text, repr(raw[:60]), "'--input'")


def json_object(text: str, where: str, hint: str) -> dict[str, Any]:
    """``text`` as a JSON object; BadParameter saying ``where`` when it is not one."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{where}: not valid JSON ({exc})", param_hint=hint) from exc
    if not isinstance(value, dict):
        raise typer.BadParameter(
            f"{where}: must be a JSON object, got {type(value).__name__}", param_hint=hint
        )
    return value


@commands.command()
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
    draft: Annotated[
        bool, typer.Option("--draft", help="Store it as a draft: not queued until `start`.")
    ] = False,
    debounce_key: Annotated[
        str | None,
        typer.Option(help="Submits with this key make one job, run after the last of them."),
    ] = None,
    debounce_s: Annotated[
        float | None, typer.Option(help="The debounce window in seconds (with --debounce-key).")
    ] = None,
    concurrency: Annotated[
        list[str] | None,
        typer.Option(
            "--concurrency",
            "-c",
            metavar="KEY=LIMIT",
            help="A concurrency key: at most LIMIT jobs holding KEY run at once (repeatable).",
        ),
    ] = None,
    throttle: Annotated[
        str | None,
        typer.Option(metavar="KEY=LIMIT/SECONDS", help="At most LIMIT starts of KEY per SECONDS."),
    ] = None,
) -> None:
    """Submit a job and print its id; with --watch, follow it and print its result."""
    job_input = parse_input(input_json)
    try:
        keys = [parse_assignment(text).model_dump() for text in concurrency or ()]
        rate = parse_throttle(throttle).model_dump() if throttle else None
    except ValueError as exc:  # pydantic's ValidationError is one
        raise CliError(f"--concurrency/--throttle: {exc}", Exit.USAGE) from None
    if draft and watch:
        raise CliError("a draft does not run until started: --draft takes no --watch", Exit.USAGE)
    if (debounce_key is None) != (debounce_s is None):
        raise CliError("--debounce-key and --debounce-s go together", Exit.USAGE)
    debounce = None if debounce_key is None else {"key": debounce_key, "seconds": debounce_s}
    with owner_client(ctx) as client:
        submitted = client.submit(
            job_type,
            job_input,
            priority=priority,
            delay_seconds=delay,
            max_attempts=max_attempts,
            timeout_seconds=timeout,
            idempotency_key=key,
            draft=draft or None,
            debounce=debounce,
            concurrency=keys or None,
            throttle=rate,
        )
        page = ctx.obj.link_to(client, submitted.id)
        if not watch:
            typer.echo(submitted.id)
            note(f"its page: {page}")
            return
        note(f"job {submitted.id} submitted; its page: {page}")
        raise typer.Exit(follow(client, submitted.id))


def read_batch(path: str) -> list[dict[str, Any]]:
    """The jobs of a JSON Lines file ("-": stdin), each line one job as a submit takes it."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="FILE") from exc
    jobs: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        jobs.append(json_object(line, f"line {number}", "FILE"))
    if not jobs:
        raise typer.BadParameter(f"{path}: no jobs in it", param_hint="FILE")
    return jobs


@commands.command("submit-batch")
def submit_batch(
    ctx: typer.Context,
    path: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help='JSON Lines: one job a line, as {"type", "input", ...}; - for stdin.',
        ),
    ],
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Follow the batch until every job ended.")
    ] = False,
) -> None:
    """Submit up to 1,000 jobs at once, all or none; print the batch's id, then each job's."""
    jobs = read_batch(path)
    with owner_client(ctx) as client:
        submitted = client.submit_batch(jobs)
        if not watch:
            typer.echo(submitted.batch_id)
            for job in submitted.jobs:
                typer.echo(job.id)
            return
        note(f"batch {submitted.batch_id} of {len(submitted.jobs)} jobs submitted")
        raise typer.Exit(follow_batch(client, submitted.batch_id))


@commands.command("batch")
def show_batch(
    ctx: typer.Context,
    batch_id: Annotated[str, typer.Argument(metavar="ID")],
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Follow the batch until every job ended.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """Show a batch: its jobs by status, its progress, and each job."""
    with owner_client(ctx) as client:
        if watch:
            raise typer.Exit(follow_batch(client, batch_id))
        batch = client.batch(batch_id)
    if as_json:
        stdout().print_json(data=batch.model_dump(mode="json"))
        return
    print_batch(batch)


def print_batch(batch: Batch) -> None:
    out = stdout()
    out.print(f"batch {batch.id}: {batch_line(batch)}")
    table = Table(box=None)
    for name in ("id", "type", "status", "progress", "step"):
        table.add_column(name, no_wrap=name != "step")
    for job in batch.jobs:
        table.add_row(
            job.id,
            escape(job.type or ""),
            status_text(job.status or "deleted"),
            f"{job.progress:.0f}%",
            escape(job.step or ""),
        )
    out.print(table)


def batch_line(batch: Batch) -> str:
    counts = ", ".join(f"{n} {status}" for status, n in sorted(batch.counts.items()))
    return f"{batch.progress:.0f}% ({counts})"


def follow_batch(client: Client, batch_id: str) -> Exit:
    """Say the batch's progress as it changes until every job ended; OK when all completed."""
    said = ""
    while True:
        batch = client.batch(batch_id)
        line = batch_line(batch)
        if line != said:
            note(f"batch {batch_id}: {line}")
            said = line
        if batch.finished:
            break
        time.sleep(BATCH_POLL_S)
    print_batch(batch)
    return Exit.OK if batch.counts.get("completed", 0) == batch.size else Exit.FAILED


@commands.command("watch")
def watch_job(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    streams: Annotated[
        bool,
        typer.Option("--stream/--no-stream", help="Print the job's streamed output as it comes."),
    ] = True,
) -> None:
    """Follow a job to its end with a progress bar, then print its result."""
    with owner_client(ctx, job_id) as client:
        raise typer.Exit(follow(client, job_id, streams=streams))


def local_time(moment: datetime | None) -> str:
    return f"{moment.astimezone():%Y-%m-%d %H:%M:%S}" if moment else ""


_STATUS_STYLE = {
    "draft": "white",
    "waiting": "bright_blue",
    "paused": "yellow",
    "pending": "yellow",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def status_text(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{escape(status)}[/]"


@commands.command()
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


@commands.command()
def show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """Show one job: its status, steps, and result or error."""
    with owner_client(ctx, job_id) as client:
        job = client.get(job_id)
        page = ctx.obj.link_to(client, job.id) if not as_json else ""
    if as_json:
        stdout().print_json(data=job.model_dump(mode="json"))
        return
    out = stdout()
    facts = Table.grid(padding=(0, 2))
    rows: list[tuple[str, str]] = [
        ("id", job.id),
        ("page", escape(page)),
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


@commands.command()
def cancel(ctx: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Cancel a pending or running job."""
    with owner_client(ctx, job_id) as client:
        client.cancel(job_id)
    typer.echo(f"cancelled {job_id}")


@commands.command()
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


@commands.command()
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
