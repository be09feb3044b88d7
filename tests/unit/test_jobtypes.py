from __future__ import annotations

import random

import pytest

from jobcast.errors import InvalidInput, PermanentError, TransientError
from jobcast.registry import JobType, Registry, Step, load_registry
from workers.jobs.builtin import NoopInput, run_noop
from workers.runner import backoff_s, classify, describe_error


def test_builtin_types_are_registered() -> None:
    registry = load_registry()
    assert "noop" in registry and "demo" in registry
    demo = registry.get("demo").describe()
    assert [s["name"] for s in demo["steps"]] == ["validate", "fetch", "analyze", "report"]
    assert set(demo["input_schema"]["properties"]) == {"duration", "fail_step", "flaky"}


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"'nope'.*demo, noop"):
        load_registry().get("nope")


def test_input_errors_name_the_field() -> None:
    demo = load_registry().get("demo")
    with pytest.raises(InvalidInput) as error:
        demo.parse_input({"duration": 2, "fail_step": "teleport"})
    assert error.value.message.startswith("input.fail_step")
    assert error.value.details[0]["field"] == "fail_step"
    assert demo.parse_input({}).model_dump() == {"duration": 3.0, "fail_step": None, "flaky": 0}


def test_a_type_cannot_declare_a_step_twice_or_register_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        JobType("x", "X", NoopInput, run_noop, steps=(Step("a", "A"), Step("a", "A again")))
    registry = Registry([JobType("x", "X", NoopInput, run_noop)])
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(JobType("x", "X", NoopInput, run_noop))


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
