"""Run a job type's code in-process, for tests: no Postgres, Redis or worker.

``run(job_type, input)`` validates the input as a submit would (``InvalidInput`` when it
does not fit), runs one attempt of the code with a ``RecordingContext`` (the
``JobContext`` job code gets from the worker, with every report kept in memory) and
returns a ``Recording``: the status it ended in, the result or the error as the worker
would store it (type, category, message), the steps and their states, the progress
reports and their messages, the metadata, the streams' text and every event in order.
``run_sync`` is the same from synchronous code, like Celery's ``apply()``.

What it cannot do without a real jobcast raises NotImplementedError saying so
(``wait_children``). A question (``job.ask``) is answered from ``answers``, by step name;
a step without one ends the run in ``waiting``, as the worker's attempt ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from jobcast.errors import InvalidInput, PermanentError
from jobcast.questions import answer_problems, schema_problem
from jobcast.registry import JobType, StepHandle, Upload

__all__ = [
    "AnswerDoesNotFit",
    "Recording",
    "RecordingContext",
    "RecordingStream",
    "run",
    "run_sync",
]


@dataclass
class Recording:
    """What one in-process run of a job's code did."""

    status: str = "running"  # completed, failed or waiting once the run ends
    result: Any = None
    error: dict[str, Any] | None = None  # {"type", "category", "message"}, as stored
    exception: BaseException | None = None  # the error itself, for asserts
    progress: float = 0.0  # overall percent, as the job row would hold it
    step: str | None = None  # the last step that ran
    steps: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # name: state, duration_ms, result
    run_steps: list[dict[str, Any]] = field(default_factory=list)  # steps added at run time
    messages: list[str] = field(default_factory=list)  # every progress message, in order
    metadata: dict[str, Any] = field(default_factory=dict)
    parent_metadata: dict[str, Any] = field(default_factory=dict)
    streams: dict[str, str] = field(default_factory=dict)  # name: all its text
    question: dict[str, Any] | None = None  # step, prompt, schema, when it ended waiting
    children: list[dict[str, Any]] = field(default_factory=list)  # spawned: type, input, id
    events: list[dict[str, Any]] = field(default_factory=list)  # kind, and its fields


class RecordingStream:
    """A named stream whose text is kept in the recording."""

    def __init__(self, context: RecordingContext, name: str) -> None:
        self._context, self.name = context, name

    async def write(self, chunk: str) -> None:
        if not isinstance(chunk, str):
            raise TypeError(f"a stream takes text, not {type(chunk).__name__}: use write_json")
        if chunk:
            streams = self._context.recording.streams
            offset = len(streams.get(self.name, ""))
            streams[self.name] = streams.get(self.name, "") + chunk
            self._context.record("stream", name=self.name, offset=offset, text=chunk)

    async def write_json(self, value: Any) -> None:
        import json

        await self.write(json.dumps(value, separators=(",", ":")) + "\n")

    async def flush(self) -> None:
        return None


class RecordingRunStep:
    """A step added at run time, recorded as a dict in ``Recording.run_steps``."""

    def __init__(self, context: RecordingContext, entry: dict[str, Any]) -> None:
        self._context, self._entry, self.name = context, entry, entry["name"]
        self._started = 0.0

    async def __aenter__(self) -> RecordingRunStep:
        await self.start()
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            await self.complete()
        elif isinstance(exc, Exception):
            await self.fail(exc)

    async def start(self) -> None:
        self._started = time.monotonic()
        self._change(state="running")

    async def count(self, done: int, total: int | None = None) -> None:
        if done < 0 or (total is not None and total < 0):
            raise ValueError(f"counters are not negative: done={done}, total={total}")
        total = total if total is not None else (self._entry["counters"] or {}).get("total")
        self._change(counters={"done": done, "total": total})

    async def set_metadata(self, keys: dict[str, Any] | None = None, /, **more: Any) -> None:
        self._change(metadata={**self._entry["metadata"], **(keys or {}), **more})

    async def complete(self) -> None:
        self._change(state="completed", duration_ms=self._ms())

    async def fail(self, error: BaseException | str) -> None:
        shown = (
            _describe(error)
            if isinstance(error, BaseException)
            else {"type": "StepError", "category": "unknown", "message": error}
        )
        self._change(state="failed", error=shown, duration_ms=self._ms())

    def _ms(self) -> int | None:
        return int((time.monotonic() - self._started) * 1000) if self._started else None

    def _change(self, **fields: Any) -> None:
        self._entry.update(fields)
        self._context.record("step", step=self.name, parent=self._entry["parent"], **fields)


class RecordingContext:
    """The ``JobContext`` of ``jobcast.registry``, recording instead of storing."""

    def __init__(
        self,
        job_type: JobType,
        *,
        attempt: int = 1,
        checkpoints: Mapping[str, Any] | None = None,
        answers: Mapping[str, Any] | None = None,
        uploads: Mapping[str, Upload] | None = None,
    ) -> None:
        self.attempt = attempt
        self.recording = Recording()
        self._job_type = job_type
        self._weights = {s.name: s.weight for s in job_type.steps}
        self._titles = {s.name: s.title for s in job_type.steps}
        self._checkpoints = dict(checkpoints or {})
        self._answers = dict(answers or {})
        self._uploads = dict(uploads or {})
        self._done_weight = sum(self._weights.get(n, 0.0) for n in self._checkpoints)
        self._step: str | None = None
        self._step_percent = 0.0

    def record(self, kind: str, **fields: Any) -> None:
        self.recording.events.append({"kind": kind, **fields})

    def _advance(self) -> float:
        if self._weights:
            current = self._weights.get(self._step or "", 0.0) * self._step_percent / 100
            computed = 100 * (self._done_weight + current) / sum(self._weights.values())
        else:
            computed = self._step_percent
        rec = self.recording
        rec.progress = round(max(rec.progress, min(computed, 100.0)), 2)
        return rec.progress

    def _step_event(self, name: str, state: str, **fields: Any) -> None:
        entry = self.recording.steps.setdefault(name, {})
        entry.update(state=state, **fields)
        message = f"{self._titles[name]}…" if state == "running" else None
        self.record(
            "step", step=name, state=state, progress=self._advance(), message=message, **fields
        )

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[StepHandle]:
        if name not in self._weights:
            raise ValueError(f"job type {self._job_type.name!r} has no step {name!r}")
        if name in self._checkpoints:  # completed in an earlier attempt: nothing recorded
            yield StepHandle(name, done=True, result=self._checkpoints[name])
            return
        handle = StepHandle(name)
        self._step, self._step_percent = name, 0.0
        self.recording.step = name
        started = time.monotonic()
        self._step_event(name, "running")
        try:
            yield handle
        except Exception:
            self._step_event(name, "failed", duration_ms=int((time.monotonic() - started) * 1000))
            raise
        self._done_weight += self._weights[name]
        self._step, self._step_percent = None, 0.0
        duration_ms = int((time.monotonic() - started) * 1000)
        self._step_event(name, "completed", duration_ms=duration_ms, result=handle.result)
        self._checkpoints[name] = handle.result

    async def run_step(
        self, name: str, fn: Callable[[], Awaitable[Any]], *, max_attempts: int | None = None
    ) -> Any:
        if name in self._checkpoints:
            return self._checkpoints[name]
        declared = next((s for s in self._job_type.steps if s.name == name), None)
        tries = max(1, max_attempts or (declared.max_attempts if declared else None) or 1)
        for attempt in range(1, tries + 1):
            try:
                async with self.step(name) as step:
                    step.result = await fn()
                return step.result
            except Exception as exc:  # tried again at once: no backoff in a test
                if attempt >= tries or isinstance(exc, PermanentError | InvalidInput):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def checkpoint(self, name: str) -> Any:
        if name not in self._checkpoints:
            raise LookupError(f"step {name!r} has not completed")
        return self._checkpoints[name]

    async def ask(
        self,
        prompt: str,
        schema: dict[str, Any],
        *,
        timeout_s: float | None = None,
        on_timeout: str = "fail",
        default: Any = None,
    ) -> Any:
        step = self._step
        if step is None:
            raise PermanentError("job.ask() is called inside a step: the question is the step's")
        problem = schema_problem(schema)
        if problem is not None:
            raise PermanentError(
                f"the question of step {step!r} has a wrong answer schema: {problem}"
            )
        if step in self._answers:
            answer = self._answers[step]
            problems = answer_problems(schema, answer)
            if problems:
                raise AnswerDoesNotFit(f"the answer to step {step!r} does not fit: {problems}")
            self.record("input", step=step, answer=answer)
            return answer
        question = {"step": step, "prompt": prompt, "schema": schema, "timeout_s": timeout_s}
        self.recording.question = question
        self.record("input_required", **question)
        raise _Waiting(step)

    async def progress(self, percent: float, message: str | None = None) -> None:
        self._step_percent = max(0.0, min(float(percent), 100.0))
        if message is not None:
            self.recording.messages.append(message)
        self.record("progress", progress=self._advance(), step=self._step, message=message)

    def stream(self, name: str = "output") -> RecordingStream:
        return RecordingStream(self, name)

    async def add_step(
        self,
        title: str,
        *,
        share: float | None = None,
        counters: dict[str, int] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> RecordingRunStep:
        entry = {
            "name": f"{self._step or 'job'}.{len(self.recording.run_steps) + 1}",
            "title": title,
            "parent": self._step,
            "share": share,
            "state": "waiting",
            "counters": counters,
            "metadata": dict(metadata or {}),
            "error": None,
        }
        self.recording.run_steps.append(entry)
        self.record("step", step=entry["name"], parent=self._step, state="waiting", title=title)
        return RecordingRunStep(self, entry)

    async def add_steps(
        self, titles: list[str], *, counters: dict[str, int] | None = None
    ) -> list[RecordingRunStep]:
        return [await self.add_step(t, counters=counters) for t in titles]

    async def set_metadata(
        self, keys: dict[str, Any] | None = None, /, *, parent: bool = False, **more: Any
    ) -> None:
        merged = {**(keys or {}), **more}
        (self.recording.parent_metadata if parent else self.recording.metadata).update(merged)
        self.record("metadata", parent=parent, metadata=merged)

    async def read_upload(self, upload_id: str) -> Upload:
        if upload_id not in self._uploads:
            raise PermanentError(f"upload {upload_id} is gone")
        return self._uploads[upload_id]

    async def spawn(self, job_type: str, job_input: dict[str, Any]) -> str:
        child_id = f"child-{len(self.recording.children) + 1}"
        self.recording.children.append({"id": child_id, "type": job_type, "input": job_input})
        return child_id

    async def wait_children(self, child_ids: list[str]) -> list[dict[str, Any]]:
        raise NotImplementedError(
            "jobcast.testing runs one job's code: its children are only recorded "
            "(Recording.children); run each child's type with jobcast.testing.run, "
            "or test the parent against a running jobcast"
        )


class AnswerDoesNotFit(ValueError):
    """An answer given in ``answers`` that the step's schema refuses (raised by ``run``: the
    web process would have refused it with a 422, and the code would never see it)."""


class _Waiting(BaseException):
    """The run ends here: a question without an answer in ``answers``."""


def _describe(exc: BaseException, job_type: JobType | None = None) -> dict[str, Any]:
    from workers.runner import classify, describe_error  # the worker's own rules

    return describe_error(exc, classify(exc, job_type))


async def run(
    job_type: JobType,
    job_input: dict[str, Any],
    *,
    attempt: int = 1,
    checkpoints: Mapping[str, Any] | None = None,
    answers: Mapping[str, Any] | None = None,
    uploads: Mapping[str, Upload] | None = None,
    timeout_s: float | None = None,
) -> Recording:
    """One attempt of ``job_type``'s code on ``job_input``, recorded.

    ``checkpoints``: results of steps completed in an earlier attempt (skipped, as on a
    retry); ``answers``: each asking step's answer; ``uploads``: id to ``Upload``.
    An error of the code ends the run ``failed`` with the error the worker would store
    (``category`` says whether the worker would retry it); input that does not fit the
    type's model raises ``InvalidInput``, as a submit is refused.
    """
    params = job_type.parse_input(job_input)
    context = RecordingContext(
        job_type, attempt=attempt, checkpoints=checkpoints, answers=answers, uploads=uploads
    )
    rec = context.recording
    limit = timeout_s if timeout_s is not None else job_type.timeout_s
    scope = asyncio.timeout(limit)
    try:
        async with scope:
            rec.result = await job_type.run(context, params)
    except _Waiting:
        rec.status = "waiting"
    except AnswerDoesNotFit:
        raise
    except Exception as exc:
        if isinstance(exc, TimeoutError) and scope.expired():
            from workers.runner import JobTimeout

            exc = JobTimeout(f"the job ran past its time limit of {limit:g} s")
        rec.status, rec.exception = "failed", exc
        rec.error = _describe(exc, job_type)
    else:
        rec.status, rec.progress = "completed", 100.0
    context.record("status", status=rec.status, result=rec.result, error=rec.error)
    return rec


def run_sync(job_type: JobType, job_input: dict[str, Any], **options: Any) -> Recording:
    """``run`` from synchronous code (a plain pytest test, a script)."""
    return asyncio.run(run(job_type, job_input, **options))
