"""5. Polling: ``GET /api/jobs/{id}`` requests per second, plain and answered 304.

One finished noop job is polled by 10 concurrent clients for a fixed time,
first plainly (200 with the job) and then with ``If-None-Match`` set to its
ETag (304, no body). The baseline is the bare Starlette app (``bench/bare.py``)
reading the same row with asyncpg and answering the same two ways; the floor, the
bare app reading the job with jobcast's own statement (what the 200 must answer).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.cpu import Spent
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


@dataclass
class Polled:
    """One polling run: its calls, and the CPU each role spent on them (None where the
    processes' CPU cannot be read)."""

    load: Load
    spent: Spent | None

    def cpu_us(self, role: str) -> float | None:
        """Microseconds of the role's CPU per answered request."""
        calls = len(self.load.latencies_s)
        if self.spent is None or not calls:
            return None
        return 1e6 * self.spent.seconds[role] / calls


async def poll(
    ctx: Run, client: LoadClient, path: str, etag: str | None, expect: int, duration_s: float
) -> Polled:
    headers = {"If-None-Match": etag} if etag else {}

    async def one(_i: int) -> None:
        response = await client.get(path, headers=headers)
        if response.status_code != expect:
            raise BenchError(f"GET {path} answered {response.status_code}, not {expect}")

    await hammer(one, concurrency=CLIENTS, duration_s=min(1.0, duration_s / 4))  # warm up
    with ctx.metered() as spent:
        load = await hammer(one, concurrency=CLIENTS, duration_s=duration_s)
    return Polled(load, spent)


async def both_ways(
    ctx: Run, client: LoadClient, path: str, duration_s: float
) -> tuple[Polled, Polled]:
    first = await client.get(path)
    if first.status_code != 200 or "etag" not in first.headers:
        raise BenchError(f"GET {path} answered {first.status_code} without an ETag")
    plain = await poll(ctx, client, path, None, 200, duration_s)
    cached = await poll(ctx, client, path, first.headers["etag"], 304, duration_s)
    return plain, cached


async def run(ctx: Run, section: Section) -> None:
    token = await new_owner(ctx.web_url)
    duration_s = ctx.scale.poll_s
    async with http(ctx.web_url, token, CLIENTS) as client:
        job_id = await submit(client, "noop", {})
        owner_id = await owner_of_job(ctx.db, job_id)
        await wait_completed(ctx.db, owner_id, 1, timeout_s=30)
        plain, cached = await both_ways(ctx, client, f"/api/jobs/{job_id}", duration_s)

    bare_url = await ctx.bare_url()
    try:
        async with http(bare_url, None, CLIENTS) as client:
            raw_plain, raw_cached = await both_ways(ctx, client, f"/jobs/{job_id}", duration_s)
            whole = await poll(ctx, client, f"/jobs/{job_id}/whole", None, 200, duration_s)
    finally:
        await ctx.done_with_bare()

    what = "bare Starlette + asyncpg"
    floor = "bare app reading the job as the API answers it"
    section.figures = [
        Figure("GET /api/jobs/{id}, 200", "req/s", plain.load.rate, raw_plain.load.rate, what),
        Figure(
            "GET /api/jobs/{id}, If-None-Match → 304",
            "req/s",
            cached.load.rate,
            raw_cached.load.rate,
            what,
        ),
        Figure(
            "GET /api/jobs/{id} p50, 200",
            "ms",
            plain.load.ms(50),
            raw_plain.load.ms(50),
            what,
            False,
        ),
        Figure(
            f"GET /api/jobs/{{id}}, 200, {floor}",
            "req/s",
            whole.load.rate,
            raw_plain.load.rate,
            what,
        ),
        Figure("GET /api/jobs/{id}, 200", "req/s", plain.load.rate, whole.load.rate, floor),
    ]
    for role, name in (("web", "the web process"), ("postgres", "Postgres")):
        ours, least, bare = plain.cpu_us(role), whole.cpu_us(role), raw_plain.cpu_us(role)
        if ours is None or least is None or bare is None:
            continue
        section.figures += [
            Figure(f"CPU per GET 200, {name}, {floor}", "µs", least, bare, what, False),
            Figure(f"CPU per GET 200, {name}", "µs", ours, least, floor, False),
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
        "CPU per GET: the CPU time the role's processes spent during the measured run, over "
        "the requests answered (the bare app counts as the web process). Steadier than the "
        "rates on a shared machine, and it tells the web process's work from Postgres's.",
    ]
