"""Following a job on the terminal: a live progress bar on stderr, then how it ended."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from jobcast.cli.console import Exit, fail, note, stderr, stdout
from jobcast.client import Client, Event, Job


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
