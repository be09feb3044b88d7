"""Job types: what a job is called, its steps, its input model and the code that runs it.

Both processes load the same registry: the server to validate input and describe
types, the workers to run them. Built-in types live in ``workers.jobs``; an app
adds its own modules (``JOBCAST_JOB_MODULES``), each exposing ``JOB_TYPES``.

The web process never runs a job, so a type whose code needs heavy libraries
(a crawler, a dataframe library) declares its run function by dotted path,
``run=lazy("package.module:function")``: the declaration module stays light and
the implementation is imported in the worker, on the first run.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from jobcast.concurrency import Concurrency, Throttle
from jobcast.errors import ConfigError, InvalidInput
from jobcast.retry import RetryBounds, RetryPolicy

BUILTIN_MODULES = ("workers.jobs.builtin", "workers.jobs.site_audit", "workers.jobs.csv_insights")
# importable names: "package.module:function"
_RUN_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


class StepHandle:
    """What ``async with job.step(name) as step`` gives the body.

    ``done`` is True when the step completed in an earlier attempt: its ``result`` is the
    stored checkpoint, and the body should skip its work (no event is written for it).
    Otherwise the body sets ``result`` (JSON-able) and it is stored, as the step's
    checkpoint, in the same commit as the step's completed event.
    """

    __slots__ = ("done", "name", "result")

    def __init__(self, name: str, *, done: bool = False, result: Any = None) -> None:
        self.name = name
        self.done = done
        self.result = result

    def __repr__(self) -> str:
        return f"StepHandle({self.name!r}, done={self.done})"


class StreamWriter(Protocol):
    """A named stream of the job's (``job.stream(name)``): text watchers see as it comes."""

    async def write(self, chunk: str) -> None:
        """Append text; watchers get it within ``JOBCAST_STREAM_FLUSH_MS``."""

    async def write_json(self, value: Any) -> None:
        """Append a JSON value as one line."""

    async def flush(self) -> None:
        """Store and send what is buffered, now."""


class RunStepHandle(Protocol):
    """A step added at run time; ``async with step:`` runs it (failed, with its own
    error, when an error leaves the block)."""

    name: str

    async def __aenter__(self) -> RunStepHandle: ...

    async def __aexit__(self, *exc: Any) -> None: ...

    async def start(self) -> None: ...

    async def count(self, done: int, total: int | None = None) -> None:
        """Its counters: ``done`` of ``total``."""

    async def set_metadata(self, keys: dict[str, Any] | None = None, /, **more: Any) -> None: ...

    async def complete(self) -> None: ...

    async def fail(self, error: BaseException | str) -> None:
        """Failed, with its own error; the job goes on."""


class JobContext(Protocol):
    """What job code gets to report through. Implemented by the worker."""

    attempt: int

    def step(self, name: str) -> AbstractAsyncContextManager[StepHandle]:
        """Run the body as the named step: it starts, then completes (storing ``result``
        as its checkpoint) or fails. A step completed in an earlier attempt writes nothing
        and gives ``done=True`` with its stored result."""

    async def run_step(
        self, name: str, fn: Callable[[], Awaitable[Any]], *, max_attempts: int | None = None
    ) -> Any:
        """The step's result: its checkpoint when it completed in an earlier attempt, else
        ``await fn()`` run as the step (tried up to ``max_attempts`` times, or the Step's,
        on errors that are not permanent) and stored as its checkpoint."""

    def checkpoint(self, name: str) -> Any:
        """The stored result of a completed step; LookupError when it has not completed."""

    async def ask(
        self,
        prompt: str,
        schema: dict[str, Any],
        *,
        timeout_s: float | None = None,
        on_timeout: str = "fail",
        default: Any = None,
    ) -> Any:
        """Ask the job's owner for input in the current step: the answer (checked against
        ``schema``, a JSON Schema) once given. Until then the job is ``waiting`` and holds
        no worker: the attempt ends here, and the step runs again from its start when the
        answer comes. ``on_timeout``: ``"fail"`` the job, or go on with ``default``."""

    async def progress(self, percent: float, message: str | None = None) -> None:
        """Percent done of the current step (or of the job, outside any step)."""

    def stream(self, name: str = "output") -> StreamWriter:
        """The job's stream of that name; its writes are batched, stored and sent live."""

    async def add_step(
        self,
        title: str,
        *,
        share: float | None = None,
        counters: dict[str, int] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> RunStepHandle:
        """Add a step to the current one at run time, with ``share`` (0-1) of its weight
        (default: all that is left of it)."""

    async def add_steps(
        self, titles: list[str], *, counters: dict[str, int] | None = None
    ) -> Sequence[RunStepHandle]:
        """Add several, splitting what is left of the current step's weight equally."""

    async def set_metadata(
        self, keys: dict[str, Any] | None = None, /, *, parent: bool = False, **more: Any
    ) -> None:
        """Merge keys into the job's metadata (``parent``: its parent's); capped."""

    async def read_upload(self, upload_id: str) -> Upload:
        """A file the job's owner uploaded (``POST /api/uploads``)."""

    async def spawn(self, job_type: str, job_input: dict[str, Any]) -> str:
        """Start a child job of this one; its id. Cancelling this job cancels it too."""

    async def wait_children(self, child_ids: list[str]) -> list[dict[str, Any]]:
        """Wait for child jobs to end, counting their progress in this step's; their views."""


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    title: str
    weight: float = 1.0
    # seconds this step is expected to take when there is no history to go by
    estimate_s: float | None = None
    # tries of the step within one attempt of the job (``run_step``), on errors that are
    # not permanent, before the job's own retry policy takes over (None: one try)
    max_attempts: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "weight": self.weight,
            "estimate_s": self.estimate_s,
            "max_attempts": self.max_attempts,
        }


RunFn = Callable[[JobContext, Any], Awaitable[Any]]


class _LazyRun:
    """A run function known by its dotted path, imported when it is first called."""

    def __init__(self, path: str) -> None:
        if not _RUN_PATH.match(path):
            raise ValueError(f"run path {path!r} is not of the form 'package.module:function'")
        self.path = path
        self._fn: RunFn | None = None

    def load(self) -> RunFn:
        """The function itself, imported now if it was not; ConfigError when it cannot be."""
        if self._fn is None:
            module_name, _, name = self.path.partition(":")
            try:
                fn = getattr(importlib.import_module(module_name), name)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"job code {self.path!r} cannot be imported: {exc}") from exc
            if not callable(fn):
                raise ConfigError(f"job code {self.path!r} is not a function")
            self._fn = fn
        return self._fn

    def __call__(self, job: JobContext, params: Any) -> Awaitable[Any]:
        return self.load()(job, params)

    def __repr__(self) -> str:
        return f"lazy({self.path!r})"


def lazy(path: str) -> RunFn:
    """A run function by dotted path (``"package.module:function"``), imported on its first
    call: the process that only declares the type (the web process) never imports it."""
    return _LazyRun(path)


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
    # more exception classes that are transient (retried with backoff) for this type, besides
    # TransientError, OSError, TimeoutError and httpx's timeouts and transport errors
    retry_on: tuple[type[BaseException], ...] = ()
    # the wait between attempts (None: exponential, JOBCAST_RETRY_BASE_S/MAX_S), and the
    # bounds within which a submit's "retry" may change it (jobcast/retry.py)
    retry: RetryPolicy | None = None
    retry_bounds: RetryBounds = field(default_factory=RetryBounds)
    # exception classes retried at most once per job, whatever the attempts left
    retry_once: tuple[type[BaseException], ...] = ()
    # who may submit it: "anyone" with a token, or "app" (app keys only: an owner's 403)
    access: Literal["anyone", "app"] = "anyone"
    # at most this many jobs of this type run at once, across all workers (None: no cap):
    # the implicit concurrency key type:<name>
    concurrency: int | None = None
    # concurrency keys and throttles of each job, fixed or derived from the job
    # (jobcast/concurrency.py), and whether a submit may add its own
    keys: tuple[Concurrency | Throttle, ...] = ()
    submit_keys: bool = True
    # how long a completed job's result is kept; after that /result answers 410
    result_ttl_s: float = 7 * 86_400
    # how long a due job may stay pending, waiting for a worker slot (None: no limit), and
    # what then: "fail" it, or "report" it as stuck (job view, dashboard, /metrics)
    pending_limit_s: float | None = None
    on_pending_limit: Literal["fail", "report"] = "fail"
    # seconds a run is expected to take, from its validated input, before there is history
    estimate: Callable[[Any], float] = field(default=lambda _params: 1.0)
    # how the work grows with the input (a duration, a page count; "upload_bytes": its uploads')
    scale: Callable[[Any], float] | Literal["upload_bytes"] | None = None
    # the upload ids the validated input refers to, checked and tied to the job at submit
    uploads: Callable[[Any], list[str]] = field(default=lambda _params: [])
    # the input field that tells its jobs apart in lists and toasts (a site, a file name)
    label_field: str | None = None

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"job type {self.name!r} declares a step twice: {names}")
        if any(s.weight <= 0 for s in self.steps):
            raise ValueError(f"job type {self.name!r}: step weights must be positive")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"job type {self.name!r}: concurrency must be at least 1")
        for option in ("retry_on", "retry_once"):
            classes = tuple(getattr(self, option))
            if not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
                raise ValueError(f"job type {self.name!r}: {option} takes exception classes")
            object.__setattr__(self, option, classes)
        if self.label_field is not None and self.label_field not in self.input_model.model_fields:
            raise ValueError(f"job type {self.name!r}: label_field names no input field")
        if self.access not in ("anyone", "app"):
            raise ValueError(f"job type {self.name!r}: access is 'anyone' or 'app'")
        if self.pending_limit_s is not None and self.pending_limit_s <= 0:
            raise ValueError(f"job type {self.name!r}: pending_limit_s must be positive")
        if self.on_pending_limit not in ("fail", "report"):
            raise ValueError(f"job type {self.name!r}: on_pending_limit is 'fail' or 'report'")
        if self.retry is not None:
            try:
                self.retry_bounds.check(self.retry)
            except InvalidInput as exc:
                raise ValueError(
                    f"job type {self.name!r}: outside its own retry bounds: {exc}"
                ) from None

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
            "concurrency": self.concurrency,
            "keys": [_describe_key(k) for k in self.keys],
            "submit_keys": self.submit_keys,
            "result_ttl_s": self.result_ttl_s,
            "access": self.access,
            "retry": None if self.retry is None else self.retry.model_dump(),
            "pending_limit_s": self.pending_limit_s,
            "on_pending_limit": self.on_pending_limit,
            "label_field": self.label_field,
        }


def _describe_key(rule: Concurrency | Throttle) -> dict[str, Any]:
    key = rule.key if isinstance(rule.key, str) else "(derived)"
    described: dict[str, Any] = {"key": key, "limit": rule.limit}
    if isinstance(rule, Throttle):
        described["period_s"] = rule.period_s
    return described


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

    def load_code(self) -> None:
        """Import every type's run code now, so that a worker finds a broken import at start
        (ConfigError naming it) rather than at a job's first run."""
        for job_type in self._types.values():
            if isinstance(job_type.run, _LazyRun):
                job_type.run.load()


def load_registry(modules: Iterable[str] = ()) -> Registry:
    """A registry of the built-in types plus those of ``modules``.

    Each module exposes ``JOB_TYPES``, an iterable of JobType.
    """
    registry = Registry()
    for module_name in (*BUILTIN_MODULES, *modules):
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"JOBCAST_JOB_MODULES: cannot import {module_name!r}: {exc}") from exc
        job_types = getattr(module, "JOB_TYPES", None)
        if job_types is None:
            raise ConfigError(f"JOBCAST_JOB_MODULES: {module_name!r} has no JOB_TYPES")
        for job_type in job_types:
            registry.register(job_type)
    return registry
