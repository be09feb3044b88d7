"""Python processes for the tests, forked from a server that has imported their libraries once.

A stack's web and worker processes and the ``jobcast`` command spend most of their start
importing uvicorn, starlette, pydantic, asyncpg, redis, arq, httpx, typer and rich (about
2 s of CPU of 2.4 for a web process); the suite starts hundreds of them. Here each begins
as a fork of one process (multiprocessing's forkserver, one per test process) that imported
those libraries and nothing of jobcast's, so the product's own modules, its settings and its
prometheus registry (which reads PROMETHEUS_MULTIPROC_DIR when imported) are made afresh in
each process from its own environment. They are real processes all the same: a pid of their
own, their environment and working directory, signals, and an exit code (``-N`` for one
ended by signal N, as subprocess reports it). ``make run``, ``jobcast dev``, the install
tests and the topology rigs still start fresh interpreters.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

# nothing that reads the environment when imported (jobcast's own modules, prometheus_client)
PRELOAD = [
    "uvicorn",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.websockets.websockets_sansio_impl",
    "starlette.applications",
    "starlette.routing",
    "starlette.responses",
    "starlette.websockets",
    "starlette.staticfiles",
    "starlette.middleware.gzip",
    "pydantic",
    "pydantic_settings",
    "asyncpg",
    "redis.asyncio",
    "arq",
    "arq.worker",
    "httpx",
    "httpcore",
    "orjson",
    "uvloop",
    "websockets",
    "typer",
    "rich.console",
    "rich.progress",
    "websockets.asyncio.client",
    "websockets.asyncio.server",
    "jsonschema",
    "croniter",
    "dateutil.parser",
    # site_audit's parser, which a worker imports as it starts; not polars (csv_insights'),
    # which starts threads as it is imported, and a forked copy of those would not run
    "selectolax.lexbor",
]

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


def _run(
    module: str | None,
    code: str | None,
    args: list[str],
    env: Mapping[str, str],
    cwd: str,
    stdin: str,
    stdout: str,
    stderr: str,
) -> None:
    """In the forked process: become ``python -m module args`` (or ``python -c code``)."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, path, flags in (
        (0, stdin, os.O_RDONLY),
        (1, stdout, os.O_WRONLY | os.O_APPEND | os.O_CREAT),
        (2, stderr, os.O_WRONLY | os.O_APPEND | os.O_CREAT),
    ):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    encoding = env.get("PYTHONIOENCODING", "utf-8")
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=encoding)
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding=encoding, write_through=True
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding=encoding, write_through=True
    )
    # what a fresh interpreter would put first on its path: PYTHONPATH's entries
    extra = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    sys.path[:0] = [entry for entry in extra if entry not in sys.path]
    importlib.invalidate_caches()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.suppress(OSError):  # ps and top show its module, not the fork server's name
        Path("/proc/self/comm").write_text(module or "python -c")
    if code is not None:
        sys.argv = ["-c", *args]
        sys.path.insert(0, "")
        exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
    else:
        assert module is not None
        sys.argv = [module, *args]
        sys.path.insert(0, cwd)
        runpy.run_module(module, run_name="__main__", alter_sys=True)


class Forked:
    """A forked process with the part of subprocess.Popen's interface the tests use."""

    def __init__(self, process: multiprocessing.process.BaseProcess, args: list[str]) -> None:
        self._process = process
        self.args = args

    @property
    def pid(self) -> int:
        pid = self._process.pid
        assert pid is not None
        return pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start(
    module: str,
    args: list[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
) -> Forked:
    """``python -m module args`` with its output (both streams) appended to ``log``."""
    return _spawn(module, None, args, env, cwd, os.devnull, str(log), str(log))


def _spawn(
    module: str | None,
    code: str | None,
    args: list[str],
    env: Mapping[str, str],
    cwd: Path,
    stdin: str,
    stdout: str,
    stderr: str,
) -> Forked:
    process = _context.Process(
        target=_run,
        args=(module, code, args, dict(env), str(cwd), stdin, stdout, stderr),
        daemon=True,
    )
    process.start()
    shown = ["python", "-c", code] if code is not None else ["python", "-m", str(module)]
    return Forked(process, [*shown, *args])


def run(
    module: str | None,
    args: list[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    input: str | None = None,
    timeout: float = 60.0,
    code: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` (or ``python -c code args``) to its end, as subprocess.run
    with ``capture_output=True, text=True`` would: killed and TimeoutExpired after timeout."""
    with tempfile.TemporaryDirectory(prefix="forked-") as where:
        paths = {name: os.path.join(where, name) for name in ("in", "out", "err")}
        Path(paths["in"]).write_text(input or "", encoding="utf-8")
        forked = _spawn(module, code, args, env, cwd, paths["in"], paths["out"], paths["err"])
        try:
            returncode = forked.wait(timeout)
        except subprocess.TimeoutExpired:
            forked.kill()
            forked.wait()
            raise
        out = Path(paths["out"]).read_text(encoding="utf-8", errors="replace")
        err = Path(paths["err"]).read_text(encoding="utf-8", errors="replace")
    return subprocess.CompletedProcess(forked.args, returncode, out, err)
