"""arq's Worker, starting each job in one Redis round trip instead of four.

arq marks a job in progress with a transaction of its own: WATCH the job's in-progress
key, EXISTS on it, ZSCORE of the job on the queue, then MULTI/PSETEX/EXEC, each a round
trip, for every job a worker takes. ``Worker.start_jobs`` here does the same checks and
the same write in one script, which Redis runs atomically (as the WATCH made arq's
transaction): a job in progress elsewhere, gone from the queue or not yet due is skipped,
as arq skips it; any other is marked in progress for arq's ``in_progress_timeout_s`` and
run by arq's own ``run_job``. A Redis error gives the job's slot back before it is raised
(arq's own would keep it; ``workers.__main__.release_lost_slots`` covers arq's).

Each turn of arq's poll loop also ends by raising a cancel that a Redis call swallowed
(``Worker.heart_beat``): arq's loop runs until cancelled, and on Python 3.11 a cancel that
comes as a Redis answer does is lost, which left a stopping worker polling on.
"""

from __future__ import annotations

from typing import Any

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker as ArqWorker

from jobcast.tasks import raise_swallowed_cancel

# KEYS[1] the job's in-progress key, KEYS[2] the queue; ARGV[1] the job id, ARGV[2] now
# (ms), ARGV[3] the in-progress timeout (ms). The job's score, or nothing when it is not
# to be started here.
START_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return false end
redis.call('PSETEX', KEYS[1], ARGV[3], '1')
return score
"""


class Worker(ArqWorker):
    """arq's Worker with ``start_jobs`` in one round trip a job."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start_script: Any = None
        self._start_pool: Any = None

    async def heart_beat(self) -> None:
        """arq's last call in each turn of its poll loop: a stop (a signal, or the
        supervisor's cancel) that a Redis call of the turn swallowed ends the loop here."""
        raise_swallowed_cancel()
        await super().heart_beat()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """For each job id: take a slot, mark the job in progress unless it runs elsewhere,
        left the queue or is not due yet, and run it (arq's ``start_jobs``, one script)."""
        if self._start_pool is not self.pool:  # arq makes its pool again after an outage
            self._start_pool = self.pool
            self._start_script = self.pool.register_script(START_SCRIPT)
        timeout_ms = int(self.in_progress_timeout_s * 1000)
        for job_id_b in job_ids:
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            job_id = job_id_b.decode()
            keys = [in_progress_key_prefix + job_id, self.queue_name]
            try:
                score = await self._start_script(
                    keys=keys, args=[job_id, timestamp_ms(), timeout_ms]
                )
            except BaseException:
                self.job_counter -= 1
                self.sem.release()
                raise
            if score is None:  # running elsewhere, gone from the queue, or not due yet
                self.job_counter -= 1
                self.sem.release()
                continue
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task
