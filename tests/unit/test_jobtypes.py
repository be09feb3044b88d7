from __future__ import annotations

import random
import subprocess
import sys

import pytest

from jobcast.errors import ConfigError, InvalidInput, PermanentError, TransientError
from jobcast.registry import JobType, Registry, Step, lazy, load_registry
from workers.jobs.builtin import NoopInput, run_noop
from workers.runner import backoff_s, classify, describe_error


def test_builtin_types_are_registered() -> None:
    registry = load_registry()
    assert "noop" in registry and "demo" in registry
    demo = registry.get("demo").describe()
    assert [s["name"] for s in demo["steps"]] == ["validate", "fetch", "analyze", "report"]
    assert {"duration", "fail_step", "flaky", "ask"} <= set(demo["input_schema"]["properties"])


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"'nope'.*demo, noop"):
        load_registry().get("nope")


def test_input_errors_name_the_field() -> None:
    demo = load_registry().get("demo")
    with pytest.raises(InvalidInput) as error:
        demo.parse_input({"duration": 2, "fail_step": "teleport"})
    assert error.value.message.startswith("input.fail_step")
    assert error.value.details[0]["field"] == "fail_step"
    defaults = {"duration": 3.0, "fail_step": None, "flaky": 0, "ask": False}
    assert demo.parse_input({}).model_dump().items() >= defaults.items()


def test_a_type_cannot_declare_a_step_twice_or_register_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        JobType("x", "X", NoopInput, run_noop, steps=(Step("a", "A"), Step("a", "A again")))
    registry = Registry([JobType("x", "X", NoopInput, run_noop)])
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(JobType("x", "X", NoopInput, run_noop))


def test_the_web_process_loads_no_job_code_dependencies() -> None:
    """What the web process does at start (import the app, load the registry) pulls in
    neither the crawler nor the dataframe library: those are the worker's."""
    heavy = ("polars", "selectolax", "httpx")
    code = (
        "import sys, server.app\n"
        "from jobcast.registry import load_registry\n"
        "registry = load_registry()\n"
        "assert 'site_audit' in registry and 'csv_insights' in registry\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", f"the web process imports {done.stdout.strip()}"


async def test_a_lazy_run_function_is_imported_on_its_first_call() -> None:
    registry = Registry([JobType("x", "X", NoopInput, lazy("workers.jobs.builtin:run_noop"))])
    assert await registry.get("x").run(None, NoopInput(sleep_s=0)) == {"ok": True}  # type: ignore[arg-type]
    registry.load_code()


def test_a_lazy_run_function_that_cannot_be_imported_is_named() -> None:
    with pytest.raises(ValueError, match=r"package\.module:function"):
        lazy("workers.jobs.builtin.run_noop")
    registry = Registry([JobType("x", "X", NoopInput, lazy("workers.jobs.nowhere:run"))])
    with pytest.raises(ConfigError, match=r"'workers\.jobs\.nowhere:run' cannot be imported"):
        registry.load_code()
    registry = Registry([JobType("y", "Y", NoopInput, lazy("workers.jobs.builtin:no_such"))])
    with pytest.raises(ConfigError, match="no_such"):
        registry.load_code()


def test_the_builtin_types_run_code_loads() -> None:
    load_registry().load_code()
    assert "workers.jobs.site_audit.run" in sys.modules
    assert "workers.jobs.csv_insights.run" in sys.modules


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (PermanentError("bad"), "permanent"),
        (TransientError("later"), "transient"),
        (TimeoutError(), "transient"),
        (ConnectionResetError(), "transient"),
        (KeyError("x"), "unknown"),
        (ValueError("x"), "unknown"),
    ],
)
def test_errors_are_classified(exc: Exception, category: str) -> None:
    assert classify(exc) == category


def test_error_description_is_readable() -> None:
    assert describe_error(PermanentError("the file is empty"), "permanent") == {
        "type": "PermanentError",
        "category": "permanent",
        "message": "the file is empty",
    }
    assert describe_error(KeyError("col"), "unknown")["message"] == "KeyError: 'col'"


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    random.seed(7)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (10, 30.0)):
        for _ in range(50):
            delay = backoff_s(attempt, 1.0, 30.0)
            assert ceiling / 2 <= delay <= ceiling
