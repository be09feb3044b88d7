"""The commands that steer a job a person is in the loop of: ``answer``, ``pause``,
``resume`` and ``start`` (a draft), each a client of the server at ``--url``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from jobcast.cli.console import CliError, Exit, note
from jobcast.cli.target import owner_client
from jobcast.client import BadRequest

commands = typer.Typer()

JobIdArgument = Annotated[str, typer.Argument(metavar="ID")]


def parse_answer(raw_json: str | None, pairs: list[str]) -> Any:
    """The answer: ``--json`` (any JSON value), or ``key=value`` pairs making an object,
    each value read as JSON when it is JSON (``true``, ``3``, ``["a","b"]``), else as text."""
    if raw_json is not None and pairs:
        raise typer.BadParameter("give --json or key=value pairs, not both", param_hint="'--json'")
    if raw_json is not None:
        try:
            return json.loads(raw_json)
        except ValueError as exc:
            raise typer.BadParameter(
                f"not valid JSON ({exc}): {raw_json[:60]!r}", param_hint="'--json'"
            ) from exc
    if not pairs:
        raise typer.BadParameter(
            "give the answer: --json '{...}' or key=value pairs", param_hint="'ANSWER'"
        )
    answer: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(
                f"expected key=value, got {pair[:60]!r}", param_hint="'ANSWER'"
            )
        try:
            answer[key] = json.loads(value)
        except ValueError:
            answer[key] = value
    return answer


@commands.command()
def answer(
    ctx: typer.Context,
    job_id: JobIdArgument,
    pairs: Annotated[
        list[str] | None,
        typer.Argument(metavar="[KEY=VALUE]...", help="The answer's fields, e.g. approve=true."),
    ] = None,
    raw_json: Annotated[
        str | None, typer.Option("--json", help="The whole answer as JSON.", show_default=False)
    ] = None,
    step: Annotated[
        str | None, typer.Option(help="The step whose question this answers.", show_default=False)
    ] = None,
) -> None:
    """Answer the question a waiting job asks; it goes on at that step."""
    value = parse_answer(raw_json, pairs or [])
    with owner_client(ctx, job_id) as client:
        try:
            accepted = client.answer(job_id, value, step)
        except BadRequest as exc:
            fields = [
                f"{d.get('field')}: {d.get('message')}"
                for d in (exc.details if isinstance(exc.details, list) else [])
                if isinstance(d, dict)
            ]
            detail = f" ({'; '.join(fields)})" if fields else ""
            raise CliError(f"the answer was refused: {exc}{detail}", Exit.REFUSED) from exc
    where = accepted.get("step")
    typer.echo(f"answered {job_id}" + (f"; it goes on at step {where}" if where else ""))


@commands.command()
def pause(ctx: typer.Context, job_id: JobIdArgument) -> None:
    """Pause a job: at once while pending, at its next step boundary while running."""
    with owner_client(ctx, job_id) as client:
        accepted = client.pause(job_id)
    if accepted.get("status") == "paused":
        typer.echo(f"paused {job_id}")
    else:
        typer.echo(f"pausing {job_id}: it stops at its next step boundary")


@commands.command()
def resume(ctx: typer.Context, job_id: JobIdArgument) -> None:
    """Queue a paused job again; it goes on from its checkpoint."""
    with owner_client(ctx, job_id) as client:
        client.resume(job_id)
    typer.echo(f"resumed {job_id}")


@commands.command()
def start(ctx: typer.Context, job_id: JobIdArgument) -> None:
    """Queue a draft (made with `submit --draft`)."""
    with owner_client(ctx, job_id) as client:
        client.start(job_id)
    typer.echo(f"started {job_id}")
    note(f"follow it: jobcast watch {job_id}")
