"""What the commands say and how they end: the exit codes, and one line per error."""

from __future__ import annotations

import enum
import sys

from rich.console import Console
from rich.markup import escape

from jobcast.errors import JobcastError


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


def stdout() -> Console:
    # piped, a table or a long line stays whole: rich would otherwise wrap it at 80 columns
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 1000)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True)


def note(message: str) -> None:
    """A remark for the person at the terminal, on stderr, so stdout stays the answer."""
    stderr().print(escape(message), style="dim", highlight=False)


def fail(message: str, code: Exit) -> Exit:
    """Say what went wrong on one line of stderr; the exit code to end with."""
    one_line = " ".join(message.split())
    stderr().print(f"jobcast: {one_line}", markup=False, highlight=False)
    return code
