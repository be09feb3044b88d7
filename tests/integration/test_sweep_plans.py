"""The sweep runs every few seconds on whichever worker holds its lease, and /metrics is
scraped about as often: none of their statements may read the whole jobs table, or any
table that keeps a row of every job (its events, steps, claims, keys, ...), which grow
with every job an install has kept, whatever Postgres's statistics say, against a real
Postgres and Redis.

One full sweep runs on a grown database, each statement it sent is recorded (asyncpg's
query logger), and each is run again in a transaction that is rolled back, counting the
rows it read by reading a table whole (``pg_stat_xact_user_tables``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from jobcast.bus import Publisher
from jobcast.endpoints import Endpoints
from jobcast.queue import Queue
from jobcast.registry import load_registry
from jobcast.sql import QUERIES
from jobcast.store import Store
from jobcast.store.base import json_codecs
from tests.conftest import DatabaseFactory
from tests.in_process import worker_settings
from tests.integration.test_plans import OWNER, add_owner
from tests.integration.test_reliability import wait_status
from tests.support import eventually, launch
from workers.heartbeat import Heartbeat
from workers.sweep import Turn, worker_sweep
from workers.sweep.lease import Lease
from workers.sweep.retention import Retention

# kept jobs, most of the table: the share a real install's has; and enough that a worker's
# batch of ends or beats (50 jobs at most, its default concurrency) is looked up job by job:
# Postgres reads a table whole for a batch of one job per 100-200 of its rows, which is
# cheaper there (docs/performance.md, "A batch of a worker's ends, and a table read whole")
FINISHED = 20_000
GROWN_TABLES = (  # each holds a row or more of every finished job
    "jobs",
    "job_events",
    "job_steps",
    "job_claims",
    "job_keys",
    "job_retries",
    "job_inputs",
    "webhook_deliveries",
    "job_streams",
    "uploads",
)
NAMES = {sql: name for name, sql in QUERIES.items()}  # a statement's text to its name


async def grow(conn: asyncpg.Connection) -> None:
    """What an install keeps: finished jobs with their steps and events (results still
    within their time to live, none past retention), and a little of every other state:
    due and delayed jobs, running ones whose worker still beats, jobs parked on a key, and
    a tenant's backlog parked on its fairness group (the owner is the database's)."""
    await conn.execute(
        """
        INSERT INTO jobs (id, owner_id, type, status, attempts, result, seq,
                          created_at, started_at, finished_at)
        SELECT gen_random_uuid(), $1, 'noop',
               (ARRAY['completed', 'completed', 'completed', 'failed', 'cancelled'])[g % 5 + 1],
               1, '{"ok": true}', 3, t, t, t + interval '1 second'
        FROM generate_series(1, $2) AS g,
             LATERAL (SELECT now() - g * interval '10 seconds' AS t) AS at
        """,
        OWNER,
        FINISHED,
    )
    await conn.execute(
        """
        INSERT INTO job_steps (job_id, position, name, title, weight, status, duration_ms)
        SELECT id, 0, 'work', 'Work', 1, 'completed', 1000 FROM jobs
        """
    )
    await conn.execute(
        """
        INSERT INTO job_events (job_id, seq, kind, payload)
        SELECT id, s, 'status', '{}' FROM jobs, generate_series(1, 3) AS s
        """
    )
    # and what else a finished job keeps until retention deletes it: its claim, its keys,
    # its retry policy, a question answered, a webhook delivered, a stream, an upload read
    for each in (
        "INSERT INTO job_claims (job_id, attempt, worker) SELECT id, 1, 'w:1' FROM jobs",
        "INSERT INTO job_keys (job_id, kind, key, lim)"
        " SELECT id, 'concurrency', 'key:done', 1 FROM jobs",
        "INSERT INTO job_retries (job_id) SELECT id FROM jobs",
        "INSERT INTO job_inputs (job_id, step, prompt, schema, expires_at, answer, answered_at)"
        " SELECT id, 'work', 'Go?', '{}', finished_at, 'true', finished_at FROM jobs",
        "INSERT INTO webhook_deliveries (job_id, attempt, url, status, delivered_at, tried_at)"
        " SELECT id, 1, 'http://127.0.0.1:9/', 'delivered', finished_at, finished_at FROM jobs",
        "INSERT INTO job_streams (job_id, name, length) SELECT id, 'log', 10 FROM jobs",
        "INSERT INTO uploads (id, owner_id, job_id, filename, content_type, size, data)"
        " SELECT gen_random_uuid(), owner_id, id, 'a.csv', 'text/csv', 1, 'a' FROM jobs",
    ):
        await conn.execute(each)
    for status, count, extra in (
        ("pending", 40, ""),  # due
        ("pending", 20, ", run_at = now() + interval '1 hour'"),  # delayed
        ("running", 20, ", started_at = now(), heartbeat_at = now(), attempts = 1"),
    ):
        await conn.execute(
            f"""
            WITH made AS (
                INSERT INTO jobs (id, owner_id, type, status)
                SELECT gen_random_uuid(), $1, 'noop', $2 FROM generate_series(1, $3)
                RETURNING id
            )
            UPDATE jobs SET status = $2 {extra} FROM made WHERE jobs.id = made.id
            """,
            OWNER,
            status,
            count,
        )
    await conn.execute(
        """
        INSERT INTO jobs (id, owner_id, type, status, parked_on, parked_limit)
        SELECT gen_random_uuid(), $1, 'noop', 'pending', 'key:a', 1
        FROM generate_series(1, 30)
        """,
        OWNER,
    )
    # and a tenant's backlog, parked on its fairness group
    await conn.execute(
        """
        INSERT INTO jobs (id, owner_id, type, status, fair_key, parked_on, parked_limit)
        SELECT gen_random_uuid(), $1, 'noop', 'pending', $2, $2, 100
        FROM generate_series(1, 200)
        """,
        OWNER,
        f"fair:owner:{OWNER}",
    )


@pytest.fixture(params=["analyzed", "never analyzed"])
async def grown(
    request: pytest.FixtureRequest, new_database: DatabaseFactory
) -> AsyncIterator[str]:
    """A grown database; analyzed (as autovacuum leaves one), or never."""
    database = await new_database()
    conn = await asyncpg.connect(database)
    try:
        await add_owner(conn)
        await grow(conn)
        if request.param == "analyzed":
            await conn.execute("ANALYZE")
    finally:
        await conn.close()
    yield database


Sent = list[tuple[str, tuple[Any, ...]]]  # statements of the store, with their values


@asynccontextmanager
async def recorded(database: str, sent: Sent) -> AsyncIterator[Store]:
    """A store whose statements are recorded in ``sent`` as they are sent."""

    def record(query: asyncpg.connection.LoggedQuery) -> None:
        if query.query in NAMES:  # not the pool's own (its reset, a codec's lookup)
            sent.append((query.query, tuple(query.args)))

    async def init(conn: asyncpg.Connection) -> None:
        await json_codecs(conn)
        conn.add_query_logger(record)

    pool = await asyncpg.create_pool(database, min_size=1, max_size=2, init=init)
    try:
        yield Store(pool)
    finally:
        await pool.close()


async def one_sweep(endpoints: Endpoints, database: str) -> Sent:
    """Run the worker's sweep once, every duty; the statements it sent, with their values."""
    sent: Sent = []
    settings = worker_settings(endpoints, database, reaper_interval_s=60.0)
    redis = aioredis.Redis.from_url(endpoints.redis_url)
    try:
        async with recorded(database, sent) as store:
            publisher = Publisher(redis, settings, store)
            sweeper = worker_sweep(
                store,
                Queue(redis, settings),
                redis,
                publisher,
                settings,
                Heartbeat(store, 30.0, redis, settings.redis_prefix),
                load_registry(settings.job_module_list),
            )
            try:
                await sweeper.sweep()
            finally:
                await publisher.close()
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    return sent


async def rows_read(
    conn: asyncpg.Connection, query: str, args: tuple[Any, ...], plans: str
) -> dict[str, tuple[int, int]]:
    """Run a statement again, undone after: of each grown table, the rows it read by
    reading the table whole, and those it fetched through an index."""

    async def counts() -> dict[str, tuple[int, int]]:
        rows = await conn.fetch(
            "SELECT relname, seq_tup_read, idx_tup_fetch FROM pg_stat_xact_user_tables"
            " WHERE relname = ANY($1)",
            list(GROWN_TABLES),
        )
        return {r["relname"]: (r["seq_tup_read"], r["idx_tup_fetch"]) for r in rows}

    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute(f"SET LOCAL plan_cache_mode = {plans}")
        before = await counts()
        await conn.fetch(query, *args)
        after = await counts()
    finally:
        await transaction.rollback()
    zero = (0, 0)
    return {
        t: (
            after.get(t, zero)[0] - before.get(t, zero)[0],
            after.get(t, zero)[1] - before.get(t, zero)[1],
        )
        for t in GROWN_TABLES
    }


PLANS = ["force_generic_plan", "force_custom_plan"]


async def one_scrape(database: str) -> Sent:
    """What a scrape of /metrics reads of Postgres (every 15 s or so, from Prometheus)."""
    sent: Sent = []
    async with recorded(database, sent) as store:
        await store.gauges(stale_after_s=30.0)
    return sent


@pytest.mark.parametrize("plans", PLANS)
async def test_no_sweep_statement_reads_a_grown_table_whole(
    endpoints: Endpoints, grown: str, plans: str
) -> None:
    sent = await one_sweep(endpoints, grown)
    # the sweep did run its duties: the lease, the outbox's look at pending jobs, the
    # parked keys and their releases, retention
    names = {NAMES[query] for query, _ in sent}
    assert {"take_lease", "pending", "parked_keys", "release_key", "retention"} <= names
    # and so, as often, do the gauges a scrape of /metrics reads
    scraped = await one_scrape(grown)
    assert {"active_by_type", "stuck_pending"} <= {NAMES[query] for query, _ in scraped}
    sent += scraped
    conn = await asyncpg.connect(grown)
    await json_codecs(conn)
    whole: dict[str, dict[str, int]] = {}
    try:
        for query, args in sent:
            read = {t: n for t, (n, _) in (await rows_read(conn, query, args, plans)).items()}
            if any(n >= FINISHED for n in read.values()):
                whole[f"{NAMES[query]}{args!r:.60}"] = {t: n for t, n in read.items() if n}
    finally:
        await conn.close()
    assert whole == {}


@pytest.mark.parametrize("plans", PLANS)
async def test_a_pass_over_results_reads_the_jobs_finished_since_the_last(
    endpoints: Endpoints, new_database: DatabaseFactory, plans: str
) -> None:
    database = await new_database()
    conn = await asyncpg.connect(database)
    await json_codecs(conn)
    try:
        await add_owner(conn)
        # results dropped an hour ago, of jobs kept until retention deletes them
        await conn.execute(
            """
            INSERT INTO jobs (id, owner_id, type, status, attempts, finished_at,
                              result_expired_at)
            SELECT gen_random_uuid(), $1, 'short_lived', 'completed', 1,
                   now() - interval '2 hours', now() - interval '1 hour'
            FROM generate_series(1, $2)
            """,
            OWNER,
            FINISHED,
        )
        await conn.execute("ANALYZE")
        fresh = await conn.fetchval(
            "INSERT INTO jobs (id, owner_id, type, status, attempts, result, finished_at)"
            " VALUES (gen_random_uuid(), $1, 'short_lived', 'completed', 1, $2, now())"
            " RETURNING id",
            OWNER,
            {"n": 1},
        )
        sent: Sent = []
        async with recorded(database, sent) as store:
            lease = Lease(store, "retention-test", 600)
            assert await lease.take()
            turn = Turn(lease=lease, redis_up=True, last_outage_at=0.0)
            duty = Retention(
                store, worker_settings(endpoints, database), load_registry(["tests.jobtypes"])
            )
            await duty.run(turn)
            # its type keeps a result one second: the first pass came too soon
            kept = await conn.fetchrow(
                "SELECT result, result_expired_at FROM jobs WHERE id = $1", fresh
            )
            assert kept["result"] == {"n": 1} and kept["result_expired_at"] is None
            await asyncio.sleep(1.2)
            await duty.run(turn)
        dropped = await conn.fetchrow(
            "SELECT result, result_expired_at FROM jobs WHERE id = $1", fresh
        )
        assert dropped["result"] is None and dropped["result_expired_at"] is not None
        first, second = [(q, args) for q, args in sent if NAMES[q] == "expire_results"]
        # the first pass read every completed job of the type, the second those since
        fetched = [(await rows_read(conn, q, args, plans))["jobs"] for q, args in (first, second)]
    finally:
        await conn.close()
    assert fetched[0][0] == fetched[1][0] == 0  # neither read the table whole
    assert fetched[0][1] >= FINISHED, fetched
    assert fetched[1][1] < 10, fetched


async def rows_read_whole(database: str) -> dict[str, int]:
    """The rows of each grown table read by reading it whole, as Postgres has counted them
    for the database: once no other backend is connected to it (each flushes its counts as
    it exits)."""
    conn = await asyncpg.connect(database)
    try:

        async def others_gone() -> bool:
            others: int = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return others == 0

        await eventually(others_gone, timeout_s=15.0, what="the database's other backends gone")

        async def counts() -> dict[str, int]:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            rows = await conn.fetch(
                "SELECT relname, seq_tup_read FROM pg_stat_user_tables WHERE relname = ANY($1)",
                list(GROWN_TABLES),
            )
            return {r["relname"]: r["seq_tup_read"] for r in rows}

        # the last backend to exit may still be flushing: the same counts twice, apart
        last: dict[str, int] = {}

        async def settled() -> dict[str, int] | None:
            nonlocal last
            now = await counts()
            if now == last:
                return now
            last = now
            return None

        return await eventually(settled, timeout_s=10.0, interval_s=0.3, what="counts settled")
    finally:
        await conn.close()


async def test_a_running_install_reads_no_grown_table_whole(
    endpoints: Endpoints, grown: str, tmp_path: Path
) -> None:
    before = await rows_read_whole(grown)
    stack = await launch(
        grown,
        endpoints.redis_url,
        tmp_path,
        JOBCAST_REAPER_INTERVAL_S="0.2",
        # the default, said here: a batch of the worker's ends or beats is of 50 jobs at most
        JOBCAST_WORKER_CONCURRENCY="50",
    )
    try:
        async with stack.client(await stack.owner()) as client:
            made = await client.post(
                "/api/jobs/batch", json={"jobs": [{"type": "noop", "input": {}}] * 10}
            )
            assert made.status_code == 202, made.text
            for job in made.json()["jobs"]:
                await wait_status(client, job["id"], "completed")
            for _ in range(5):  # scraped as Prometheus would, a sweep or more apart
                assert (await client.get("/metrics")).status_code == 200
                await asyncio.sleep(0.3)
        conn = await asyncpg.connect(grown)
        try:
            left: list[asyncpg.Record] = []

            async def all_run() -> bool:
                # the grown database's own: the due jobs queued again by the outbox and the
                # parked backlog released by the sweep, and all of them run (those made
                # running above stay so: no worker claimed them, none can find them stale)
                nonlocal left
                left = await conn.fetch(
                    "SELECT status, parked_on, count(*)::int AS n FROM jobs"
                    " WHERE status = 'pending' AND run_at <= now() GROUP BY 1, 2 ORDER BY 1, 2"
                )
                return not left

            try:
                await eventually(all_run, timeout_s=60.0, what="every due job run")
            except AssertionError:
                raise AssertionError(f"not run: {[tuple(r) for r in left]}") from None
        finally:
            await conn.close()
    finally:
        stack.close()
    after = await rows_read_whole(grown)
    read = {t: after[t] - before[t] for t in GROWN_TABLES if after[t] > before[t]}
    # a read of one of them whole is FINISHED rows or more
    assert all(n < FINISHED for n in read.values()), read
