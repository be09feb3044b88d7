"""5. Polling: ``GET /api/jobs/{id}`` requests per second, plain and answered 304.

One finished noop job is polled by 10 concurrent clients for a fixed time,
first plainly (200 with the job) and then with ``If-None-Match`` set to its
ETag (304, no body). The baseline is the bare Starlette app (``bench/bare.py``)
reading the same row with asyncpg and answering the same two ways; the floor, the
bare app reading the job with jobcast's own statement (what the 200 must answer).
"""

from __future__ import annotations

from bench.harness import (
    BenchError,
    Figure,
    Load,
    Run,
    Section,
    hammer,
    http,
    new_owner,
    owner_of_job,
    submit,
    wait_completed,
)
from bench.load import LoadClient

CLIENTS = 10


async def poll(
    client: LoadClient, path: str, etag: str | None, expect: int, duration_s: float
) -> Load:
    headers = {"If-None-Match": etag} if etag else {}

    async def one(_i: int) -> None:
        response = await client.get(path, headers=headers)
        if response.status_code != expect:
            raise BenchError(f"GET {path} answered {response.status_code}, not {expect}")

    await hammer(one, concurrency=CLIENTS, duration_s=min(1.0, duration_s / 4))  # warm up
    return await hammer(one, concurrency=CLIENTS, duration_s=duration_s)


async def both_ways(client: LoadClient, path: str, duration_s: float) -> tuple[Load, Load]:
    first = await client.get(path)
    if first.status_code != 200 or "etag" not in first.headers:
        raise BenchError(f"GET {path} answered {first.status_code} without an ETag")
    plain = await poll(client, path, None, 200, duration_s)
    cached = await poll(client, path, first.headers["etag"], 304, duration_s)
    return plain, cached


async def run(ctx: Run, section: Section) -> None:
    token = await new_owner(ctx.web_url)
    duration_s = ctx.scale.poll_s
    async with http(ctx.web_url, token, CLIENTS) as client:
        job_id = await submit(client, "noop", {})
        owner_id = await owner_of_job(ctx.db, job_id)
        await wait_completed(ctx.db, owner_id, 1, timeout_s=30)
        plain, cached = await both_ways(client, f"/api/jobs/{job_id}", duration_s)

    bare_url = await ctx.bare_url()
    try:
        async with http(bare_url, None, CLIENTS) as client:
            raw_plain, raw_cached = await both_ways(client, f"/jobs/{job_id}", duration_s)
            whole = await poll(client, f"/jobs/{job_id}/whole", None, 200, duration_s)
    finally:
        await ctx.done_with_bare()

    what = "bare Starlette + asyncpg"
    section.figures = [
        Figure("GET /api/jobs/{id}, 200", "req/s", plain.rate, raw_plain.rate, what),
        Figure(
            "GET /api/jobs/{id}, If-None-Match → 304", "req/s", cached.rate, raw_cached.rate, what
        ),
        Figure("GET /api/jobs/{id} p50, 200", "ms", plain.ms(50), raw_plain.ms(50), what, False),
        Figure(
            "GET /api/jobs/{id}, 200, bare app reading the job as the API answers it",
            "req/s",
            whole.rate,
            raw_plain.rate,
            what,
        ),
        Figure(
            "GET /api/jobs/{id}, 200",
            "req/s",
            plain.rate,
            whole.rate,
            "bare app reading the job as the API answers it",
        ),
    ]
    section.notes = [
        f"{CLIENTS} concurrent keep-alive clients for {duration_s:g} s each, after a short "
        "unmeasured warm-up. The client (aiohttp, in the benchmark process) shares the machine's "
        "cores with the server, so on a small machine both figures are partly the client's.",
        "jobcast checks the token; for a 200 it reads the job with its steps, children and "
        "webhook deliveries, and for a request with `If-None-Match` first only the job's `seq` "
        "(the ETag is the job's id and `seq`), answering 304 without reading more. The bare "
        "app reads the whole row for both, without an owner check. The bare app reading the job "
        "as the API answers it runs jobcast's own statement (the row with its steps, children, "
        "webhook tries and streams, JSON decoded as jobcast's store does) and sends it: the least "
        "any GET that answers what the API promises does, with no token, model or ETA.",
    ]
