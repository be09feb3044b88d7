"""6. Scale-out: two web processes and two workers on one Redis and one Postgres.

Fan-out: demo jobs are submitted to start a few seconds later, each is watched
on both web processes meanwhile, and both workers share them when they come
due; every socket must get every event of its job, in order, whichever process
it is on and whichever worker runs the job. Throughput: the same noop run as
benchmark 1 through one web process and one worker, then through two of each
(submitters split between the two webs).
"""

from __future__ import annotations

import asyncio

from bench.harness import (
    Figure,
    Run,
    Section,
    Watcher,
    close_sockets,
    hammer,
    http,
    new_owner,
    submit,
    watch_all,
    ws_base,
)
from bench.throughput import jobcast_rate

FANOUT_JOB_S = 1.0


async def fan_out(ctx: Run, web_urls: list[str]) -> list[Watcher]:
    count = ctx.scale.scaleout_jobs
    # due once every socket is open; then both workers, already polling, share the jobs
    delay_s = max(ctx.scale.lead_s, 0.03 * count)
    token = await new_owner(web_urls[0])
    job_ids: list[str] = []
    async with http(web_urls[0], token, 20) as client:

        async def one(_i: int) -> None:
            job_ids.append(
                await submit(client, "demo", {"duration": FANOUT_JOB_S}, delay_seconds=delay_s)
            )

        await hammer(one, concurrency=20, count=count)
    watchers = [Watcher(ws_base(url), token, job_id) for job_id in job_ids for url in web_urls]
    follows: list[asyncio.Task[None]] = []
    try:
        await watch_all(watchers)
        follows = [asyncio.create_task(w.follow()) for w in watchers]
        await asyncio.wait_for(asyncio.gather(*follows), ctx.scale.budget_s)
    finally:
        for task in follows:
            task.cancel()
        await close_sockets([w.socket for w in watchers if w.socket is not None])
    return watchers


async def stored_seqs(ctx: Run, watchers: list[Watcher]) -> dict[str, int]:
    rows = await ctx.db.fetch(
        "SELECT id::text AS id, seq FROM jobs WHERE id = ANY($1::uuid[])",
        list({w.job_id for w in watchers}),
    )
    return {r["id"]: r["seq"] for r in rows}


async def run(ctx: Run, section: Section) -> None:
    count = ctx.scale.noop_jobs
    one_each = await jobcast_rate(ctx, [ctx.web_url], "noop", {}, count)

    second_web, _ = await asyncio.gather(
        ctx.cluster.start_web("web-2"), ctx.cluster.start_worker("worker-2")
    )
    web_urls = [ctx.web_url, second_web]
    watchers = await fan_out(ctx, web_urls)
    two_each = await jobcast_rate(ctx, web_urls, "noop", {}, count)

    final_seq = await stored_seqs(ctx, watchers)
    complete = [w for w in watchers if w.gap_free and w.seqs[-1] == final_seq[w.job_id]]
    per_web = {url: [w for w in watchers if w.url == ws_base(url)] for url in web_urls}
    events = {url: sum(len(w.seqs) for w in ws) for url, ws in per_web.items()}
    everyone = len(complete) == len(watchers)
    verdict = (
        f"{'yes' if everyone else 'no'}: {len(complete)} of {len(watchers)} sockets, "
        + ", ".join(f"{events[u]} events on web {i + 1}" for i, u in enumerate(web_urls))
    )
    section.figures = [
        Figure(
            "every watcher gets every event, on either web process",
            "",
            verdict,
            None,
            "— (a check, not a speed)",
        ),
        Figure(
            f"noop throughput ({count} jobs), 2 web + 2 workers",
            "jobs/s",
            two_each,
            one_each,
            "1 web + 1 worker",
        ),
    ]
    section.notes = [
        f"{ctx.scale.scaleout_jobs} demo jobs of {FANOUT_JOB_S:g} s, each watched by one socket "
        "on each web process from before it starts; a socket counts when it got events 1 to "
        "the job's last stored `seq`, each once, in order, and a normal close.",
        f"On this {ctx.settings.worker_concurrency}-job-per-worker setup and a machine of few "
        "cores, a second pair of processes competes for the same cores as Postgres, Redis and "
        "the load generator: the throughput ratio shows the overhead or gain of running two "
        "of each here, not the gain on more machines.",
    ]
