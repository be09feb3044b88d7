"""Where an attempt stops without failing: a step waits for a person, or the job pauses.

Both end the attempt uncounted, in one fenced statement with its event, and leave
nothing behind: no arq job (``run_job`` returns), no heartbeat, no connection. The job
is ``waiting`` or ``paused`` in Postgres alone, so it survives any restart and a Redis
wipe. An answer (``POST /api/jobs/{id}/input``, or the question's time limit with a
default) or a resume makes it pending and queues it again; the next attempt skips the
completed steps (``workers.checkpoints``) and finds the answer stored.

``Suspended`` carries the stop up through the job's code: a ``BaseException``, so that
job code catching ``Exception`` does not swallow it, and the step the job is in does not
record it as a failure.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from jobcast.errors import PermanentError
from jobcast.questions import ON_TIMEOUT, schema_problem

if TYPE_CHECKING:
    from workers.context import Reporter

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 2000


class Suspended(BaseException):
    """The attempt ends here, uncounted: the job waits for input, or is paused."""


async def ask(
    reporter: Reporter,
    prompt: str,
    schema: dict[str, Any],
    *,
    timeout_s: float | None,
    on_timeout: str,
    default: Any,
) -> Any:
    """The answer to the current step's question, once given; until then the job waits."""
    step = reporter.current_step
    if step is None:
        raise PermanentError("job.ask() is called inside a step: the question is the step's")
    if reporter.checkpoints.answered(step):
        return reporter.checkpoints.answer(step)
    problem = schema_problem(schema)
    if problem is not None:
        raise PermanentError(f"the question of step {step!r} has a wrong answer schema: {problem}")
    if on_timeout not in ON_TIMEOUT:
        raise PermanentError(f"on_timeout must be 'fail' or 'default', not {on_timeout!r}")
    if timeout_s is not None and timeout_s <= 0:
        raise PermanentError(f"the time limit of a question must be positive, not {timeout_s}")
    prompt = prompt[:MAX_PROMPT_CHARS]
    store = reporter.store
    await reporter.write(
        lambda: store.wait_for_input(
            reporter.job_id,
            reporter.attempt,
            step=step,
            prompt=prompt,
            schema=schema,
            timeout_s=timeout_s,
            on_timeout=on_timeout,
            default=default,
        ),
        last=True,
    )
    log.info("job %s: step %s waits for input; the attempt ends", reporter.job_id, step)
    raise Suspended(f"step {step} waits for input")


async def pause_if_asked(reporter: Reporter) -> None:
    """At a step boundary whose start was refused: if the owner asked for a pause, pause
    here and stop (else the attempt was lost, and the caller says so)."""
    paused = await reporter.write_if(
        lambda: reporter.store.pause_at_boundary(reporter.job_id, reporter.attempt), last=True
    )
    if paused:
        log.info("job %s: paused at a step boundary; the attempt ends", reporter.job_id)
        raise Suspended("paused")
