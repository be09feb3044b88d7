"""Job types: what a job is called, its steps, its input model and the code that runs it.

Both processes load the same registry: the server to validate input and describe
types, the workers to run them. Built-in types live in ``workers.jobs``; an app
adds its own modules, each of which calls ``registry.register`` at import.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from jobcast.errors import InvalidInput

BUILTIN_MODULES = ("workers.jobs.builtin",)


class JobContext(Protocol):
    """What job code gets to report through. Implemented by the worker."""

    attempt: int

    def step(self, name: str) -> AbstractAsyncContextManager[None]:
        """Run the body as the named step: it starts, then completes or fails."""

    async def progress(self, percent: float, message: str | None = None) -> None:
        """Percent done of the current step (or of the job, outside any step)."""


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    title: str
    weight: float = 1.0

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "weight": self.weight}


RunFn = Callable[[JobContext, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class JobType:
    """A kind of job. ``run(job, params)`` returns the JSON-able result."""

    name: str
    title: str
    input_model: type[BaseModel]
    run: RunFn
    steps: tuple[Step, ...] = ()
    max_attempts: int = 3
    # the time limit of one attempt; a job may ask for less, never more
    timeout_s: float = 3600.0
    # whether an attempt that runs out of time is retried (else the job fails at once)
    retry_on_timeout: bool = False
    # seconds a run is expected to take, from its validated input
    estimate: Callable[[Any], float] = field(default=lambda _params: 1.0)

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"job type {self.name!r} declares a step twice: {names}")
        if any(s.weight <= 0 for s in self.steps):
            raise ValueError(f"job type {self.name!r}: step weights must be positive")

    def parse_input(self, raw: dict[str, Any]) -> BaseModel:
        """The validated input, or InvalidInput naming the fields at fault."""
        try:
            return self.input_model.model_validate(raw)
        except ValidationError as exc:
            details = [
                {"field": ".".join(str(p) for p in err["loc"]) or "input", "message": err["msg"]}
                for err in exc.errors()
            ]
            first = details[0]
            raise InvalidInput(
                f"input.{first['field']}: {first['message']}", details=details
            ) from exc

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.name,
            "title": self.title,
            "steps": [s.describe() for s in self.steps],
            "input_schema": self.input_model.model_json_schema(),
            "max_attempts": self.max_attempts,
            "timeout_s": self.timeout_s,
        }


class Registry:
    """The job types known to this process, by name."""

    def __init__(self, types: Iterable[JobType] = ()) -> None:
        self._types: dict[str, JobType] = {}
        for job_type in types:
            self.register(job_type)

    def register(self, job_type: JobType) -> JobType:
        if job_type.name in self._types:
            raise ValueError(f"job type {job_type.name!r} is registered twice")
        self._types[job_type.name] = job_type
        return job_type

    def get(self, name: str) -> JobType:
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(sorted(self._types))
            raise InvalidInput(
                f"unknown job type {name!r}; known types: {known}",
                details=[{"field": "type", "message": "unknown job type"}],
            ) from None

    def __iter__(self) -> Iterator[JobType]:
        return iter(sorted(self._types.values(), key=lambda t: t.name))

    def __contains__(self, name: object) -> bool:
        return name in self._types


def load_registry(modules: Iterable[str] = ()) -> Registry:
    """A registry of the built-in types plus those of ``modules``.

    Each module exposes ``JOB_TYPES``, an iterable of JobType.
    """
    registry = Registry()
    for module_name in (*BUILTIN_MODULES, *modules):
        module = importlib.import_module(module_name)
        for job_type in getattr(module, "JOB_TYPES", ()):
            registry.register(job_type)
    return registry
