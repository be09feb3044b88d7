"""Concurrency keys: derivation from the job, the submit's additions, and their bounds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobcast.concurrency import (
    MAX_KEYS_PER_JOB,
    Concurrency,
    JobFacts,
    JobKey,
    KeyLimit,
    Throttle,
    ThrottleLimit,
    derive,
    job_keys,
    parse_assignment,
    parse_throttle,
)
from jobcast.errors import InvalidInput

FACTS = JobFacts(tenant="42", subject="u7", tags=("a", "b"), input={"decision": 9})
NO_TENANT = JobFacts(tenant=None, subject=None, tags=(), input={})


def test_a_template_takes_the_jobs_tenant_subject_tags_and_input() -> None:
    assert derive("tenant:{tenant}", FACTS) == "tenant:42"
    assert derive("user:{subject}", FACTS) == "user:u7"
    assert derive("tags:{tags}", FACTS) == "tags:a,b"
    assert derive("decision:{decision}", FACTS) == "decision:9"
    assert derive(lambda f: f"org:{f.tenant}", FACTS) == "org:42"


def test_a_template_naming_what_the_job_lacks_gives_no_key() -> None:
    assert derive("tenant:{tenant}", NO_TENANT) is None
    assert derive("x:{missing}", FACTS) is None
    assert job_keys("t", (Concurrency("tenant:{tenant}", 5),), NO_TENANT) == []


def test_the_types_keys_and_the_submits_merge_the_stricter_limit_winning() -> None:
    declared = (Concurrency("tenant:{tenant}", 5), Throttle("api", 10, 60))
    keys = job_keys(
        "t",
        declared,
        FACTS,
        added=[KeyLimit(key="tenant:42", limit=2), KeyLimit(key="user:u7", limit=3)],
    )
    assert sorted(keys, key=lambda k: (k.kind, k.key)) == [
        JobKey("concurrency", "tenant:42", 2),
        JobKey("concurrency", "user:u7", 3),
        JobKey("throttle", "api", 10, 60),
    ]
    # a submit asking for more than the type allows gets the type's limit
    looser = job_keys("t", declared, FACTS, added=[KeyLimit(key="tenant:42", limit=50)])
    assert JobKey("concurrency", "tenant:42", 5) in looser


def test_too_many_keys_or_keys_a_type_forbids_are_invalid_input() -> None:
    many = [KeyLimit(key=f"k:{i}", limit=1) for i in range(MAX_KEYS_PER_JOB)]
    assert len(job_keys("t", (), FACTS, added=many)) == MAX_KEYS_PER_JOB
    with pytest.raises(InvalidInput, match="at most 8 keys"):
        job_keys("t", (Concurrency("tenant:{tenant}", 1),), FACTS, added=many)
    with pytest.raises(InvalidInput, match="take no concurrency keys"):
        job_keys("t", (), FACTS, added=many[:1], submit_keys=False)
    with pytest.raises(InvalidInput, match="derived key"):
        job_keys("t", (Concurrency(lambda f: "type:sneaky", 1),), FACTS)
    with pytest.raises(InvalidInput, match="derived key"):
        job_keys("t", (Concurrency(lambda f: "k" * 201, 1),), FACTS)


@pytest.mark.parametrize(
    "raw",
    [
        {"key": "", "limit": 1},
        {"key": "k" * 201, "limit": 1},
        {"key": "with space", "limit": 1},
        {"key": "type:x", "limit": 1},
        {"key": "k", "limit": 0},
        {"key": "k", "limit": 100_001},
        {"key": "k", "limit": "3"},
    ],
)
def test_a_submits_key_out_of_bounds_is_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        KeyLimit.model_validate(raw)


def test_a_throttles_period_is_bounded_and_types_check_their_own() -> None:
    for period_s in (0.5, 86_401):
        with pytest.raises(ValidationError):
            ThrottleLimit(key="api", limit=1, period_s=period_s)
    with pytest.raises(ValueError, match="period_s"):
        Throttle("api", 1, 0.1)
    with pytest.raises(ValueError, match="limit"):
        Concurrency("tenant:{tenant}", 0)


def test_the_clis_assignments_parse_or_say_the_form() -> None:
    assert parse_assignment("tenant:42=5") == KeyLimit(key="tenant:42", limit=5)
    assert parse_throttle("api:geo=10/60") == ThrottleLimit(key="api:geo", limit=10, period_s=60)
    for bad in ("tenant:42", "=5", "tenant:42=x"):
        with pytest.raises(ValueError, match="KEY=LIMIT"):
            parse_assignment(bad)
    with pytest.raises(ValueError, match="KEY=LIMIT/SECONDS"):
        parse_throttle("api=10")
