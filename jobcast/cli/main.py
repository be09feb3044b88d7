"""The ``jobcast`` entry point: one app over both kinds of commands, one line per error.

Every error is one line on stderr and a non-zero exit code (see ``Exit``), so
scripts can tell a failed job from a refused request or an unreachable server.
"""

from __future__ import annotations

import sys

import typer

from jobcast.cli import client_commands, operator_commands
from jobcast.cli.console import CliError, Exit, fail
from jobcast.cli.target import options
from jobcast.client import ApiError, Unavailable, Unreachable
from jobcast.errors import ConfigError, JobcastError, ServiceUnavailable, StorageUnavailable

app = typer.Typer(
    name="jobcast",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Background jobs with live progress: run the service, submit and follow jobs.",
)
app.callback()(options)
app.add_typer(client_commands.commands)
app.add_typer(operator_commands.commands)


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
    args = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    try:
        # with no arguments, the help: asked for, it is printed and ends with exit code 0
        result = command.main(args=args or ["--help"], prog_name="jobcast", standalone_mode=False)
    except typer.TyperException as exc:
        # a bad command line (exit code 2, with the command it concerns), or a file not opened
        if exc.exit_code != Exit.USAGE:
            return fail(exc.format_message(), Exit.FAILED)
        where = getattr(exc, "ctx", None)
        hint = f" (see: {where.command_path} --help)" if where is not None else ""
        return fail(f"{exc.format_message()}{hint}", Exit.USAGE)
    except (typer.Abort, KeyboardInterrupt):
        return fail("interrupted", Exit.INTERRUPTED)
    except JobcastError as exc:
        return fail(str(exc), exit_code_of(exc))
    except Exception as exc:
        return fail(f"unexpected {type(exc).__name__}: {exc}", Exit.FAILED)
    return int(result) if isinstance(result, int) else Exit.OK
