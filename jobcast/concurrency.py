"""Concurrency keys and throttles: what may start now, per key, across all workers.

A job holds keys. A concurrency key (``tenant:42`` at most 5) lets a job start only
while fewer than its limit of jobs holding the key run; a throttle (``api:geo`` at most
10 per 60 s) only while fewer than its limit of starts fall in the window. A job type
declares its keys, fixed or derived from the job (its tenant, subject, tags or input:
a template such as ``"tenant:{tenant}"`` or a function), and a submit may add its own
unless the type forbids it. A type's ``concurrency`` cap is the implicit key
``type:<name>``. Postgres enforces every limit at claim time (``jobcast_admit`` in
schema.sql); an operator may change a key's limit at run time (``jobcast limits``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from string import Formatter
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from jobcast.errors import InvalidInput

MAX_KEY_CHARS = 200
MAX_KEYS_PER_JOB = 8
MAX_LIMIT = 100_000
MIN_PERIOD_S = 1.0
MAX_PERIOD_S = 86_400.0
# a key is printable ASCII without spaces, and does not start with the reserved "type:"
KEY_PATTERN = r"^[\x21-\x7e]+$"
RESERVED_PREFIX = "type:"


def _not_reserved(key: str) -> str:
    if key.startswith(RESERVED_PREFIX):
        raise ValueError("keys starting with 'type:' are reserved for job types' caps")
    return key


Key = Annotated[
    str,
    Field(min_length=1, max_length=MAX_KEY_CHARS, pattern=KEY_PATTERN),
    AfterValidator(_not_reserved),
]

Kind = Literal["concurrency", "throttle"]


class KeyLimit(BaseModel):
    """A concurrency key of a submit: at most ``limit`` jobs holding ``key`` run at once."""

    model_config = ConfigDict(extra="forbid")

    key: Key
    limit: StrictInt = Field(ge=1, le=MAX_LIMIT)


class ThrottleLimit(BaseModel):
    """A throttle of a submit: at most ``limit`` starts of ``key`` per ``period_s``."""

    model_config = ConfigDict(extra="forbid")

    key: Key
    limit: StrictInt = Field(ge=1, le=MAX_LIMIT)
    period_s: float = Field(ge=MIN_PERIOD_S, le=MAX_PERIOD_S)


class LimitIn(BaseModel):
    """The body of ``PUT /api/admin/limits/{key}``: a concurrency limit, or with
    ``period_s`` a throttle (at most ``limit`` starts per ``period_s``)."""

    model_config = ConfigDict(extra="forbid")

    limit: StrictInt = Field(ge=1, le=MAX_LIMIT)
    period_s: float | None = Field(None, ge=MIN_PERIOD_S, le=MAX_PERIOD_S)


class KeyName(BaseModel):
    """A key an operator names (``type:<name>`` included: a type's cap)."""

    key: str = Field(min_length=1, max_length=MAX_KEY_CHARS, pattern=KEY_PATTERN)


@dataclass(frozen=True)
class JobFacts:
    """What a type's key may be derived from."""

    tenant: str | None
    subject: str | None
    tags: tuple[str, ...]
    input: Mapping[str, Any]


# a key of a type: a fixed key, a template over JobFacts' fields ("tenant:{tenant}"), or a
# function of the facts; None (or a template naming a missing field) means no key
KeySource = str | Callable[[JobFacts], str | None]


@dataclass(frozen=True)
class Concurrency:
    """A job type's concurrency key: at most ``limit`` of its jobs holding the key at once."""

    key: KeySource
    limit: int

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"concurrency key {self.key!r}: limit must be at least 1")


@dataclass(frozen=True)
class Throttle:
    """A job type's throttle: at most ``limit`` starts per ``period_s`` of the key."""

    key: KeySource
    limit: int
    period_s: float

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"throttle {self.key!r}: limit must be at least 1")
        if not MIN_PERIOD_S <= self.period_s <= MAX_PERIOD_S:
            raise ValueError(
                f"throttle {self.key!r}: period_s must be within {MIN_PERIOD_S:g}-{MAX_PERIOD_S:g}"
            )


@dataclass(frozen=True)
class JobKey:
    """One key a job holds, as stored in ``job_keys``."""

    kind: Kind
    key: str
    limit: int
    period_s: float | None = None


def derive(source: KeySource, facts: JobFacts) -> str | None:
    """The key a type's source gives for one job (None: this job has none)."""
    if callable(source):
        return source(facts)
    fields = {**facts.input, "tenant": facts.tenant, "subject": facts.subject}
    fields["tags"] = ",".join(facts.tags) or None
    try:
        names = {name for _, name, _, _ in Formatter().parse(source) if name}
        if any(fields.get(name) is None for name in names):
            return None
        return source.format_map(fields)
    except (KeyError, IndexError, ValueError, AttributeError):
        return None


def job_keys(
    type_name: str,
    declared: tuple[Concurrency | Throttle, ...],
    facts: JobFacts,
    *,
    added: list[KeyLimit] | None = None,
    throttle: ThrottleLimit | None = None,
    submit_keys: bool = True,
) -> list[JobKey]:
    """The keys of one job: its type's (derived from the job), then the submit's.

    InvalidInput (a 422) when the submit adds keys its type forbids, or when there are
    more than ``MAX_KEYS_PER_JOB``; a derived key too long or malformed also fails here.
    """
    added = added or []
    if (added or throttle is not None) and not submit_keys:
        raise InvalidInput(
            f"{type_name} jobs take no concurrency keys or throttle from a submit",
            details=[{"field": "concurrency", "message": "not allowed for this type"}],
        )
    keys: dict[tuple[str, str], JobKey] = {}
    for rule in declared:
        key = derive(rule.key, facts)
        if key is None:
            continue
        _check_derived(type_name, key)
        if isinstance(rule, Throttle):
            keys[("throttle", key)] = JobKey("throttle", key, rule.limit, rule.period_s)
        else:
            keys[("concurrency", key)] = JobKey("concurrency", key, rule.limit)
    for item in added:  # a submit's own limit for a key its type declares is the stricter
        old = keys.get(("concurrency", item.key))
        limit = item.limit if old is None else min(old.limit, item.limit)
        keys[("concurrency", item.key)] = JobKey("concurrency", item.key, limit)
    if throttle is not None:
        keys[("throttle", throttle.key)] = JobKey(
            "throttle", throttle.key, throttle.limit, throttle.period_s
        )
    if len(keys) > MAX_KEYS_PER_JOB:
        raise InvalidInput(
            f"concurrency: at most {MAX_KEYS_PER_JOB} keys per job, got {len(keys)}",
            details=[{"field": "concurrency", "message": "too many keys"}],
        )
    return list(keys.values())


def _check_derived(type_name: str, key: str) -> None:
    if (
        not key
        or len(key) > MAX_KEY_CHARS
        or key.startswith(RESERVED_PREFIX)
        or not key.isprintable()
    ):
        raise InvalidInput(
            f"{type_name}: the derived key {key[:60]!r} is empty, over {MAX_KEY_CHARS} "
            "characters, or starts with the reserved 'type:'",
            details=[{"field": "concurrency", "message": "bad derived key"}],
        )


def parse_assignment(text: str) -> KeyLimit:
    """``tenant:42=5`` (the CLI's ``--concurrency``) as a KeyLimit; ValueError if not."""
    key, sep, limit = text.rpartition("=")
    if not sep or not key or not limit.strip().isdigit():
        raise ValueError(f"{text!r}: expected KEY=LIMIT, e.g. tenant:42=5")
    return KeyLimit(key=key, limit=int(limit))


def parse_throttle(text: str) -> ThrottleLimit:
    """``api:geo=10/60`` (the CLI's ``--throttle``) as a ThrottleLimit; ValueError if not."""
    key, sep, rate = text.rpartition("=")
    limit, slash, period = rate.partition("/")
    try:
        if not sep or not slash:
            raise ValueError
        return ThrottleLimit(key=key, limit=int(limit), period_s=float(period))
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValueError(f"{text!r}: expected KEY=LIMIT/SECONDS, e.g. api:geo=10/60") from None
