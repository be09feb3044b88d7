"""9. Batches: 1,000 jobs in one ``POST /api/jobs/batch`` next to 1,000 ``POST /api/jobs``.

Both sides submit 1,000 noop jobs (250 in quick mode), each for an owner of its own, with the worker
running: the time until jobcast has accepted them all (the batch's one answer; the last
single submit's answer), and jobs per second from the first request to the
``finished_at`` of the last job in Postgres. The single submits are sent by 10
concurrent clients on keep-alive connections, as an app's backend would send them.
"""

from __future__ import annotations

import asyncio
import time

from bench.harness import (
    BenchError,
    Figure,
    Run,
    Section,
    http,
    new_owner,
    owner_of_job,
    submit,
    wait_completed,
)

BATCHES = {"quick": 250, "full": 1000}  # full: the most one batch takes
CLIENTS = 10


def singles(count: int) -> str:
    return f"{count:,} single POST /api/jobs, {CLIENTS} at a time"


async def batch_run(run: Run) -> tuple[float, float]:
    """Seconds to accept one batch of jobs, and jobs per second to their completion."""
    count = BATCHES[run.scale.name]
    token = await new_owner(run.web_url)
    jobs = [{"type": "noop", "input": {}} for _ in range(count)]
    async with http(run.web_url, token, 1) as client:
        started = time.time()
        response = await client.post("/api/jobs/batch", json={"jobs": jobs})
        accepted = time.time()
    if response.status_code != 202:
        raise BenchError(f"POST /api/jobs/batch answered {response.status_code}: {response.text}")
    owner_id = await owner_of_job(run.db, response.json()["jobs"][0]["id"])
    finished = await wait_completed(run.db, owner_id, count, timeout_s=run.scale.budget_s)
    return accepted - started, count / (finished - started)


async def singles_run(run: Run) -> tuple[float, float]:
    count = BATCHES[run.scale.name]
    """The same jobs, each its own request."""
    token = await new_owner(run.web_url)
    first: list[str] = []
    indexes = iter(range(count))
    async with http(run.web_url, token, CLIENTS) as client:

        async def sender() -> None:
            for _ in indexes:
                job_id = await submit(client, "noop", {})
                if not first:
                    first.append(job_id)

        started = time.time()
        await asyncio.gather(*(sender() for _ in range(CLIENTS)))
        accepted = time.time()
    owner_id = await owner_of_job(run.db, first[0])
    finished = await wait_completed(run.db, owner_id, count, timeout_s=run.scale.budget_s)
    return accepted - started, count / (finished - started)


async def run(ctx: Run, section: Section) -> None:
    count = BATCHES[ctx.scale.name]
    singles_what = singles(count)
    batch_accept_s, batch_rate = await batch_run(ctx)
    singles_accept_s, singles_rate = await singles_run(ctx)
    section.figures += [
        Figure(
            f"time to accept {count:,} jobs",
            "ms",
            batch_accept_s * 1000,
            singles_accept_s * 1000,
            singles_what,
            False,
        ),
        Figure(
            f"jobs/s, {count:,} jobs from the first request to the last completion",
            "jobs/s",
            batch_rate,
            singles_rate,
            singles_what,
        ),
    ]
    section.notes = [
        f"jobcast's column is one batch of {count:,} noop jobs: one request, checked whole, "
        "stored by one statement (each column an array, unnested) in one transaction, and "
        "queued in one Redis round trip. The other column is the same jobs submitted one "
        f"request each by {CLIENTS} concurrent clients: a statement and a Redis round trip "
        "per job. One worker runs the jobs meanwhile, on both sides.",
    ]
