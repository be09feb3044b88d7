"""The retry policy's waits, its merge with a submit's fields, and the type's bounds."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from jobcast.errors import InvalidInput, RetryAfter, TransientError
from jobcast.registry import JobType
from jobcast.retry import RetryBounds, RetryPolicy, install_default


def policy(**fields: object) -> RetryPolicy:
    return RetryPolicy.model_validate(fields)


@pytest.mark.parametrize(
    ("backoff", "waits"),
    [
        ("fixed", [2, 2, 2, 2, 2]),
        ("linear", [2, 4, 6, 8, 10]),
        ("exponential", [2, 4, 8, 10, 10]),
    ],
)
def test_each_backoff_grows_as_it_says_up_to_its_cap(backoff: str, waits: list[float]) -> None:
    exact = policy(backoff=backoff, base_s=2, max_s=10, jitter=0)
    assert [exact.delay_s(n) for n in range(1, 6)] == waits


def test_jitter_takes_at_most_its_fraction_off() -> None:
    jittery = policy(backoff="fixed", base_s=10, max_s=10, jitter=0.2)
    assert jittery.delay_s(1, rand=lambda: 0.0) == 10
    assert jittery.delay_s(1, rand=lambda: 0.999999) == pytest.approx(8, abs=1e-4)


def test_the_install_default_is_the_old_backoff() -> None:
    default = install_default(1.0, 30.0)
    for attempt, ceiling in [(1, 1), (3, 4), (9, 30)]:
        assert default.delay_s(attempt, rand=lambda: 0.0) == ceiling
        assert default.delay_s(attempt, rand=lambda: 1.0) == ceiling / 2


def test_a_submit_changes_only_the_fields_it_gives() -> None:
    base = policy(backoff="linear", base_s=5, max_s=60, jitter=0)
    merged = base.merged(RetryPolicy.model_validate({"backoff": "fixed"}))
    assert (merged.backoff, merged.base_s, merged.max_s, merged.jitter) == ("fixed", 5, 60, 0)
    assert base.merged(None) is base


@pytest.mark.parametrize(
    "fields",
    [{"backoff": "quadratic"}, {"base_s": 0}, {"jitter": 2}, {"base_s": 5, "max_s": 1}],
)
def test_a_malformed_policy_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate(fields)


def test_bounds_name_every_field_outside_them() -> None:
    bounds = RetryBounds(backoffs=("fixed",), max_base_s=10, max_max_s=60, max_attempts=3)
    with pytest.raises(InvalidInput) as caught:
        bounds.check(policy(backoff="linear", base_s=20, max_s=100, max_attempts=4))
    fields = [d["field"] for d in caught.value.details or []]
    assert fields == ["retry.backoff", "retry.base_s", "retry.max_s", "retry.max_attempts"]
    bounds.check(policy(backoff="fixed", base_s=5, max_s=60, max_attempts=3))


def test_retry_after_is_a_transient_error_carrying_its_wait() -> None:
    error = RetryAfter(30, "the upstream answered 429")
    assert isinstance(error, TransientError)
    assert (error.retry_after_s, str(error)) == (30, "the upstream answered 429")
    assert TransientError("x", retry_after_s=2).retry_after_s == 2
    assert TransientError("x").retry_after_s is None


async def _run(_job: object, _params: object) -> None:
    return None


def test_a_type_refuses_bad_retry_options() -> None:
    with pytest.raises(ValueError, match="retry_once"):
        JobType("t", "T", BaseModel, _run, retry_once=("ParseError",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="access"):
        JobType("t", "T", BaseModel, _run, access="admin")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside its own retry bounds"):
        JobType(
            "t",
            "T",
            BaseModel,
            _run,
            retry=policy(base_s=20),
            retry_bounds=RetryBounds(max_base_s=10),
        )
