"""Following a job on the terminal: a live progress bar on stderr, then how it ended.

Text the job streams goes to stdout as it arrives (each stream's name first on stderr
when there are several), before the result; a question the job asks is a line on
stderr saying how to answer it (``jobcast answer``), and the watch waits on.
"""

from __future__ import annotations

import sys
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


def follow(client: Client, job_id: str, *, streams: bool = True) -> Exit:
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
            printer = StreamPrinter(progress.console.print) if streams else None
            for event in client.watch(job_id):
                if event.kind == "stream":
                    if printer is not None:
                        printer.write(event)
                    continue
                progress.update(task, **changes(event))
                line = milestone(event, job_id)
                if line:
                    progress.console.print(escape(line), highlight=False)
            if printer is not None:
                printer.end()
            job = client.get(job_id)
            progress.update(task, **final_changes(job))  # the bar ends where the job did
    except KeyboardInterrupt:
        note(f"stopped watching; the job goes on: jobcast watch {job_id}")
        return Exit.INTERRUPTED
    return outcome(job)


def changes(event: Event) -> dict[str, Any]:
    """What one event changes on the progress bar."""
    update: dict[str, Any] = {}
    if event.progress is not None:
        update["completed"] = event.progress
    if event.step:
        update["step"] = event.step
    if event.kind == "status":
        update["message"] = event.message or event.status
        if event.status == "completed":
            update["completed"] = 100
    elif event.message:
        update["message"] = event.message
    return update


def final_changes(job: Job) -> dict[str, Any]:
    """The bar as the job ended: its final progress (all of it once completed), the step it
    ended at (the last that ran when the job names none), and its status."""
    ran = [
        s.name
        for s in job.steps
        if s.status in ("completed", "failed", "running") and getattr(s, "parent", None) is None
    ]
    return {
        "completed": 100 if job.status == "completed" else job.progress,
        "step": job.step or (ran[-1] if ran else ""),
        "message": job.message or job.status,
    }


class StreamPrinter:
    """Streamed text to stdout as it arrives, once each piece (a watch yields each event once)."""

    def __init__(self, say: Any) -> None:
        self._say = say
        self._current: str | None = None
        self._ends_line = True

    def write(self, event: Event) -> None:
        text = event.text or ""
        if not text:
            return
        if event.name != self._current:
            self.end()
            if self._current is not None or event.name not in (None, "output"):
                self._say(escape(f"── {event.name} ──"), highlight=False)
            self._current = event.name
        sys.stdout.write(text)
        sys.stdout.flush()
        self._ends_line = text.endswith("\n")

    def end(self) -> None:
        if not self._ends_line:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._ends_line = True


def milestone(event: Event, job_id: str = "ID") -> str | None:
    """A line worth keeping above the bar: a step that ended, a retry, a question, a pause."""
    if event.kind == "input_required":
        return (
            f"? {event.prompt or 'the job asks for input'} (step {event.step}); answer with: "
            f"jobcast answer {job_id} --json '{{...}}'"
        )
    if event.kind == "input":
        return "✓ answered" + (
            " (the time limit gave the default)"
            if event.model_extra and event.model_extra.get("expired")
            else ""
        )
    if event.kind == "resumed":
        skipped = ", ".join(event.skipped or [])
        return f"↻ resumed at step {event.step}" + (
            f" (from checkpoints: {skipped})" if skipped else ""
        )
    if event.kind == "status" and event.status == "paused":
        return f"⏸ paused; go on with: jobcast resume {job_id}"
    if event.kind == "step" and event.state == "failed" and event.error is not None:
        return f"✗ {event.title or event.step}: {event.error.message}"
    if event.kind == "step" and event.state in ("completed", "failed"):
        took = f" in {event.duration_ms / 1000:.1f} s" if event.duration_ms is not None else ""
        return f"{'✓' if event.state == 'completed' else '✗'} {event.title or event.step}{took}"
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
