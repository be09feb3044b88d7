"""What a process loads as it starts: the worker and the web process leave the libraries
only some jobs use until a job needs them (each costs a part of every start)."""

from __future__ import annotations

import subprocess
import sys

from jobcast.settings import ROOT

# httpx brings its command line with it (click, rich, pygments) where those are installed
LATER = ("httpx", "click", "rich", "pygments", "jsonschema", "croniter", "polars")

_PROBE = """
import sys
import {module}
from jobcast.registry import load_registry
from jobcast.settings import load_settings
load_registry(load_settings().job_module_list)
print(" ".join(m for m in {later!r} if m in sys.modules))
"""


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a fresh interpreter in the checkout, its output captured."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def _loaded_at_start(module: str) -> list[str]:
    """The libraries of ``LATER`` a fresh interpreter holds once ``module`` is imported and
    the job types are registered, as a process's start does."""
    done = _fresh(_PROBE.format(module=module, later=LATER))
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_worker_starts_without_the_libraries_only_some_jobs_use() -> None:
    assert _loaded_at_start("workers.__main__") == []


def test_the_web_process_starts_without_them_either() -> None:
    assert _loaded_at_start("server.app") == []


def test_the_first_question_or_schedule_loads_what_it_needs() -> None:
    probe = (
        "import sys\n"
        "from jobcast.questions import schema_problem\n"
        "from jobcast.schedules import Schedule\n"
        "assert 'jsonschema' not in sys.modules and 'croniter' not in sys.modules\n"
        "print(schema_problem({'type': 7}))\n"
        "print(Schedule(name='n', cron='0 3 * * *', type='noop').cron)\n"
        "Schedule(name='n', cron='not a cron', type='noop')\n"
    )
    done = _fresh(probe)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("type: 7 is not valid"), done.stdout
    assert lines[1] == "0 3 * * *"
    assert "not a cron expression" in done.stderr
