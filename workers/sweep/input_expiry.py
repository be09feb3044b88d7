"""Input expiry: a waiting job whose question went unanswered past its time limit.

The question says what then: ``fail`` the job, or go on with its ``default`` answer
(stored like a person's, with nobody as who answered, and the job queued again). A
waiting job holds no worker and no arq job, so nothing but this duty looks at the
clock for it; an answer given at the same moment wins or loses in one statement.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from jobcast.bus import Publisher
from jobcast.queue import Queue
from jobcast.store import ExpiredInput, Store
from workers.sweep.sweeper import Turn

log = logging.getLogger(__name__)


def expired_error(step: str) -> dict[str, str]:
    return {
        "type": "InputExpired",
        "category": "permanent",
        "message": f"no answer came in time to the question of step {step!r}",
    }


class InputExpiry:
    name = "input expiry"
    needs_redis = False

    def __init__(self, store: Store, queue: Queue, publisher: Publisher) -> None:
        self._store = store
        self._queue = queue
        self._publisher = publisher

    async def run(self, turn: Turn) -> None:
        for expired in await self._store.expired_inputs():
            if not turn.held:
                return
            if expired.on_timeout == "default":
                await self._go_on(expired, turn)
            else:
                event = await self._store.fail_waiting(
                    expired.job_id, error=expired_error(expired.step)
                )
                if event is not None:
                    log.info(
                        "job %s: step %s got no answer in time; failed",
                        expired.job_id,
                        expired.step,
                    )
                    await self._publisher.publish(event)

    async def _go_on(self, expired: ExpiredInput, turn: Turn) -> None:
        event = await self._store.answer_input(
            expired.job_id, None, step=expired.step, answer=expired.default_answer
        )
        if event is None:
            return  # answered (or cancelled) meanwhile
        log.info(
            "job %s: step %s got no answer in time; going on with its default",
            expired.job_id,
            expired.step,
        )
        await self._publisher.publish(event)
        if not turn.redis_up:
            return  # pending: the outbox queues it once Redis answers
        try:
            await self._queue.enqueue(expired.job_id, priority=expired.priority)
        except (RedisError, OSError) as exc:
            log.warning("job %s: not queued yet (%s); the outbox will", expired.job_id, exc)
