"""A statement that finds a job by its id finds it by its key, whatever Postgres's statistics
say of the jobs' statuses, against a real Postgres.

The statistics here are skewed the way a busy install's are: ANALYZE ran while every job
had finished, and a backlog came after it. Believing them, Postgres took the index of
pending and running jobs (jobs_active_idx) for `id = $1 AND status = 'pending'` and read
every queued job to find one (queries.sql's header says how the statements avoid it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from jobcast.model import JobStatus
from jobcast.sql import QUERIES
from jobcast.store.reports import JobEnd, end_columns
from tests.conftest import DatabaseFactory

OWNER = uuid.UUID(int=1)
# the statements that look for jobs by their status, not by an id: the index is theirs
STATUS_SCANS = {
    "active_by_type",
    "oldest_pending",
    "past_pending_limit",
    "pending",
    "resume_type",
    "stuck_pending",
}
# not a statement EXPLAIN takes
NOT_EXPLAINED = {"rollback"}


async def add_jobs(conn: asyncpg.Connection, count: int, status: str) -> None:
    await conn.execute(
        "INSERT INTO jobs (id, owner_id, type, status, attempts, finished_at)"
        " SELECT gen_random_uuid(), $1, 'noop', $2, 1,"
        "        CASE WHEN $2 = 'completed' THEN now() END"
        " FROM generate_series(1, $3)",
        OWNER,
        status,
        count,
    )


async def add_owner(conn: asyncpg.Connection) -> None:
    """The tests' owner, that their jobs belong to."""
    await conn.execute(
        "INSERT INTO owners (id, token_hash, webhook_secret) VALUES ($1, '\\x00', 'x')", OWNER
    )


async def owned_database(new_database: DatabaseFactory) -> asyncpg.Connection:
    """A connection to a new database that holds the tests' owner."""
    conn = await asyncpg.connect(await new_database())
    try:
        await add_owner(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


@pytest.fixture
async def skewed(new_database: DatabaseFactory) -> AsyncIterator[asyncpg.Connection]:
    """3,000 finished jobs, ANALYZE, then 2,000 pending and 200 running ones."""
    conn = await owned_database(new_database)
    try:
        await add_jobs(conn, 3000, "completed")
        await conn.execute("ANALYZE")
        await add_jobs(conn, 2000, "pending")
        await add_jobs(conn, 200, "running")
        yield conn
    finally:
        await conn.close()


def value_of(type_name: str, job_id: uuid.UUID) -> Any:
    """A value of a statement's parameter by its Postgres type (an array: of one)."""
    if type_name.startswith("_"):
        return [value_of(type_name[1:], job_id)]
    return {
        "uuid": job_id,
        "text": "x",
        "int2": 1,
        "int4": 1,
        "int8": 1,
        "float4": 1.0,
        "float8": 1.0,
        "bool": False,
        "jsonb": "{}",
        "bytea": b"x",
        "timestamptz": datetime.now(UTC),
        "interval": timedelta(seconds=1),
    }.get(type_name)


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A plan's nodes (EXPLAIN's JSON), the node itself first."""
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def scans_of_jobs(plan: dict[str, Any]) -> list[str]:
    """The index (or "seq") each scan of the jobs table in a plan reads."""
    return [
        node.get("Index Name", "seq")
        for node in plan_nodes(plan)
        if node.get("Relation Name") == "jobs" and "Scan" in node["Node Type"]
    ]


async def test_no_statement_finds_a_job_by_its_id_through_the_status_index(
    skewed: asyncpg.Connection,
) -> None:
    job_id = await skewed.fetchval("SELECT id FROM jobs WHERE status = 'pending' LIMIT 1")
    # a plan for the values given, as each connection's first executions get
    await skewed.execute("SET plan_cache_mode = force_custom_plan")
    through_status: dict[str, list[str]] = {}
    for name, sql in QUERIES.items():
        if name in NOT_EXPLAINED:
            continue
        explain = await skewed.prepare("EXPLAIN (FORMAT JSON) " + sql)
        args = [value_of(t.name, job_id) for t in explain.get_parameters()]
        scans = scans_of_jobs(json.loads(await explain.fetchval(*args))[0]["Plan"])
        if "jobs_active_idx" in scans:
            through_status[name] = scans
    assert set(through_status) <= STATUS_SCANS, {
        name: scans for name, scans in through_status.items() if name not in STATUS_SCANS
    }
    # and the check sees such a scan: the sweeps do read the index
    assert "pending" in through_status


async def claim_pages(conn: asyncpg.Connection, claims: int) -> list[int]:
    """The pages each of some claims of pending jobs read (each undone after)."""
    pages = []
    for row in await conn.fetch(
        "SELECT id FROM jobs WHERE status = 'pending' ORDER BY random() LIMIT $1", claims
    ):
        transaction = conn.transaction()
        await transaction.start()
        try:
            answer = await conn.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + QUERIES["claim"],
                row["id"],
                [],
                [],
                "host:1",
            )
        finally:
            await transaction.rollback()
        plan = json.loads(answer)[0]["Plan"]
        pages.append(plan["Shared Hit Blocks"] + plan.get("Shared Read Blocks", 0))
    return pages


async def test_a_claim_reads_as_much_with_three_times_the_backlog(
    skewed: asyncpg.Connection,
) -> None:
    await claim_pages(skewed, 1)  # the connection's first: its catalog lookups
    before = await claim_pages(skewed, 5)
    await add_jobs(skewed, 4000, "pending")
    after = await claim_pages(skewed, 5)
    # reading the pending jobs' index, each claim read 117-157 pages with 2,000 queued
    assert max(after) <= max(before) + 15 < 100, (before, after)


def repeated_scans(plan: dict[str, Any]) -> list[tuple[str, int]]:
    """The scans of a statement's own parts (its CTEs) that ran more than once, with how
    often: a join of two parts planned as a loop over one for each row of the other."""
    return [
        (node["CTE Name"], node["Actual Loops"])
        for node in plan_nodes(plan)
        if node["Node Type"] == "CTE Scan" and node["Actual Loops"] > 1
    ]


async def test_a_statement_of_many_reports_reads_each_of_its_parts_once(
    skewed: asyncpg.Connection,
) -> None:
    running = await skewed.fetch("SELECT id FROM jobs WHERE status = 'running' ORDER BY id")
    ids = [r["id"] for r in running]
    n = len(ids)
    # progress reports, and every tenth a step that completes
    kinds = ["step" if i % 10 == 0 else "progress" for i in range(n)]
    states = ["completed" if k == "step" else None for k in kinds]
    payloads = [json.dumps({"progress": 50.0, "i": i}) for i in range(n)]
    results = ['{"rows": 3}' if k == "step" else None for k in kinds]
    transaction = skewed.transaction()
    await transaction.start()
    try:
        answer = await skewed.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + QUERIES["reports"],
            ids,
            [1] * n,
            kinds,
            [50.0] * n,
            ["s"] * n,
            states,
            [None] * n,
            ["half"] * n,
            payloads,
            results,
        )
        stored = await skewed.fetchval(
            "SELECT count(*) FROM job_events WHERE job_id = ANY($1::uuid[])", ids
        )
    finally:
        await transaction.rollback()
    plan = json.loads(answer)[0]["Plan"]
    assert plan["Actual Rows"] == n == stored == 200
    # each part once: with the events' times read by a join of two parts, and the steps'
    # changes by another, one part was read once for each of the 200 reports
    assert repeated_scans(plan) == []


async def test_a_statement_of_many_claims_reads_each_of_its_parts_once(
    skewed: asyncpg.Connection,
) -> None:
    queued = await skewed.fetch(
        "SELECT id FROM jobs WHERE status = 'pending' ORDER BY id LIMIT 200"
    )
    ids = [r["id"] for r in queued]
    transaction = skewed.transaction()
    await transaction.start()
    try:
        answer = await skewed.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + QUERIES["claims"], ids, [], "host:1"
        )
        claimed = await skewed.fetchval(
            "SELECT count(*) FROM job_claims WHERE job_id = ANY($1::uuid[])", ids
        )
    finally:
        await transaction.rollback()
    plan = json.loads(answer)[0]["Plan"]
    assert plan["Actual Rows"] == claimed == 200
    # each part once: the answer's join of the gate's verdicts to the claimed jobs, planned
    # as a loop over one for each row of the other, read a part once for each job
    assert repeated_scans(plan) == []
    # and no job found by reading the table: whether jobs are parked on a claimed job's
    # type (may_release) was answered by reading every job once, into a hash, when the
    # planner took the gate for a thousand rows
    assert "seq" not in scans_of_jobs(plan)


async def test_a_statement_of_many_submits_reads_each_of_its_parts_once(
    skewed: asyncpg.Connection,
) -> None:
    n, steps = 200, ("fetch", "parse", "store")
    ids = [uuid.uuid4() for _ in range(n)]
    step_of = [(job_id, name, i) for job_id in ids for i, name in enumerate(steps, start=1)]
    transaction = skewed.transaction()
    await transaction.start()
    try:
        answer = await skewed.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + QUERIES["create_jobs"],
            ids,
            [OWNER] * n,
            ["demo"] * n,
            ['{"n": 1}'] * n,
            [0] * n,
            [3] * n,
            [0.0] * n,
            [1.0] * n,
            [60.0] * n,
            [None] * n,
            [None] * n,
            [None] * n,
            [None] * n,
            [1_000_000] * n,
            ["pending"] * n,
            [None] * n,
            [f"t{i % 4}" for i in range(n)],
            ['["a"]'] * n,
            [None] * n,
            20,
            [s[0] for s in step_of],
            [s[1] for s in step_of],
            [s[1].title() for s in step_of],
            [1.0] * len(step_of),
            [s[2] for s in step_of],
        )
        made = await skewed.fetch(
            "SELECT (SELECT count(*) FROM job_steps s WHERE s.job_id = j.id) AS steps,"
            "       (SELECT count(*) FROM job_events e WHERE e.job_id = j.id) AS events,"
            "       parked_on IS NOT NULL AS parked"
            " FROM jobs j WHERE j.id = ANY($1::uuid[])",
            ids,
        )
    finally:
        await transaction.rollback()
    plan = json.loads(answer)[0]["Plan"]
    assert plan["Actual Rows"] == len(made) == n
    assert {(r["steps"], r["events"]) for r in made} == {(3, 1)}
    assert sum(r["parked"] for r in made) == n - 4 * 20  # four tenants, 20 queued each
    # each part once, and no job read by reading the table (the groups' queued jobs are
    # counted by their index)
    assert repeated_scans(plan) == []
    assert "seq" not in scans_of_jobs(plan)


async def in_their_second_step(conn: asyncpg.Connection, ids: list[Any]) -> None:
    """Give each running job three steps, the first completed and the second running."""
    await conn.execute(
        "INSERT INTO job_steps (job_id, position, name, title, weight, status)"
        " SELECT j.id, p, 's' || p, 'S', 1,"
        "        CASE p WHEN 1 THEN 'completed' WHEN 2 THEN 'running' ELSE 'waiting' END"
        " FROM unnest($1::uuid[]) AS j(id), generate_series(1, 3) AS p",
        ids,
    )


async def ending_in_their_second_step(
    conn: asyncpg.Connection, query: str, args: Callable[[list[Any]], list[Any]]
) -> tuple[dict[str, Any], int, int]:
    """``EXPLAIN ANALYZE`` of a statement that ends every running job, each in its second
    step of three, which the end closes (rolled back): its plan, the jobs, and the step
    events it stored."""
    running = await conn.fetch("SELECT id FROM jobs WHERE status = 'running' ORDER BY id")
    ids = [r["id"] for r in running]
    transaction = conn.transaction()
    await transaction.start()
    try:
        await in_their_second_step(conn, ids)
        answer = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + query, *args(ids))
        closed = await conn.fetchval(
            "SELECT count(*) FROM job_events WHERE job_id = ANY($1::uuid[]) AND kind = 'step'",
            ids,
        )
    finally:
        await transaction.rollback()
    return json.loads(answer)[0]["Plan"], len(ids), closed


async def test_a_statement_of_many_ends_reads_each_of_its_parts_once(
    skewed: asyncpg.Connection,
) -> None:
    plan, n, closed = await ending_in_their_second_step(
        skewed,
        QUERIES["finishes"],
        lambda ids: [
            ids,
            [1] * len(ids),
            ["completed"] * len(ids),
            ['{"rows": 3}'] * len(ids),
            [None] * len(ids),
            ["done"] * len(ids),
            [json.dumps({"status": "completed", "i": i}) for i in range(len(ids))],
        ],
    )
    assert plan["Actual Rows"] == n == closed == 200
    assert repeated_scans(plan) == []


async def test_a_batch_cancel_reads_each_of_its_parts_once(skewed: asyncpg.Connection) -> None:
    plan, n, closed = await ending_in_their_second_step(
        skewed,
        QUERIES["admin_cancel"],
        lambda ids: [ids, '{"status": "cancelled"}', '{"status": "cancelled"}'],
    )
    assert plan["Actual Rows"] == n == closed == 200
    # with the open steps counted, closed and their events numbered by joins of the
    # statement's parts, one part was read once for each of the 200 jobs
    assert repeated_scans(plan) == []


@pytest.fixture
async def parked_backlog(new_database: DatabaseFactory) -> AsyncIterator[asyncpg.Connection]:
    """One owner's backlog as its fairness window leaves it, analyzed: 3,000 jobs parked on
    the owner's group (so nearly every job has the one value of parked_on), 100 queued, and
    200 running."""
    conn = await owned_database(new_database)
    try:
        await add_jobs(conn, 3000, "pending")
        await conn.execute(
            "UPDATE jobs SET fair_key = $1, parked_on = $1, parked_limit = 100",
            f"fair:owner:{OWNER}",
        )
        await add_jobs(conn, 100, "pending")
        await add_jobs(conn, 200, "running")
        await conn.execute("ANALYZE")
        yield conn
    finally:
        await conn.close()


async def rows_read_whole(conn: asyncpg.Connection) -> int:
    """The rows of jobs this transaction has read by reading the table whole."""
    read: int = await conn.fetchval(
        "SELECT COALESCE(sum(seq_tup_read), 0) FROM pg_stat_xact_user_tables WHERE relname = 'jobs'"
    )
    return read


@pytest.mark.parametrize("plans", ["force_generic_plan", "force_custom_plan"])
async def test_starts_and_ends_do_not_read_every_job_while_most_are_parked(
    parked_backlog: asyncpg.Connection, plans: str
) -> None:
    conn = parked_backlog
    queued = [
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM jobs WHERE status = 'pending' AND parked_on IS NULL ORDER BY id"
            " LIMIT 10"
        )
    ]
    running = await conn.fetch(
        "SELECT id, attempts FROM jobs WHERE status = 'running' ORDER BY id LIMIT 10"
    )
    ends = [JobEnd(r["id"], r["attempts"], JobStatus.COMPLETED, {"ok": True}) for r in running]
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute(f"SET LOCAL plan_cache_mode = {plans}")
        before = await rows_read_whole(conn)
        claimed = await conn.fetch(QUERIES["claims"], queued, [], "host:1")
        after_claims = await rows_read_whole(conn)
        ended = await conn.fetch(QUERIES["finishes"], *end_columns(ends))
        after_ends = await rows_read_whole(conn)
    finally:
        await transaction.rollback()
    assert sum(r["id"] is not None for r in claimed) == len(ended) == 10
    # whether jobs are parked on a started job's type (may_release), and on an ended one's
    # (its slots given back), each was answered by reading all 3,300 jobs: Postgres took
    # the one value most jobs are parked on for what any key would find at once
    assert after_claims - before < 100, after_claims - before
    assert after_ends - after_claims < 100, after_ends - after_claims


async def key_rows_read(conn: asyncpg.Connection) -> int:
    """The rows of job_keys this session has read, by any scan, since it last sent its
    counts on (the view counts earlier transactions' until then)."""
    read: int = await conn.fetchval(
        "SELECT COALESCE(sum(seq_tup_read + COALESCE(idx_tup_fetch, 0)), 0)::bigint"
        " FROM pg_stat_xact_user_tables WHERE relname = 'job_keys'"
    )
    return read


@pytest.mark.parametrize("statement", ["claims", "claim"])
async def test_a_claim_planned_before_the_keys_grew_reads_only_its_jobs_keys(
    new_database: DatabaseFactory, statement: str
) -> None:
    # A worker's connection makes its plans as it starts, on a new install: no job has a key
    # yet. Planned then, asking whether a job holds a key (in the claim's gate, and for
    # may_release) read every key (a scan that stops at the first match, or a hash of all of
    # them: cheaper on an empty table), and went on doing so at every claim as keyed jobs
    # came, until something made the plan again.
    conn = await owned_database(new_database)
    try:
        await add_jobs(conn, 12, "pending")
        queued = [r["id"] for r in await conn.fetch("SELECT id FROM jobs ORDER BY id")]
        args = {
            "claims": lambda job: ([job], [], "host:1"),
            "claim": lambda job: (job, [], [], "host:1"),
        }
        for job_id in queued[:10]:  # past the five custom plans: the generic one is kept
            answer = await conn.fetch(QUERIES[statement], *args[statement](job_id))
            assert answer and answer[0]["id"] == job_id
        # keyed jobs came and ended: a key row each, of many keys
        await add_jobs(conn, 20_000, "completed")
        await conn.execute(
            "INSERT INTO job_keys (job_id, kind, key, lim)"
            " SELECT id, 'concurrency', 'domain:' || (random() * 1000)::int, 2"
            " FROM jobs WHERE status = 'completed'"
        )
        transaction = conn.transaction()
        await transaction.start()
        try:
            before = await key_rows_read(conn)
            answer = await conn.fetch(QUERIES[statement], *args[statement](queued[10]))
            read = await key_rows_read(conn) - before
        finally:
            await transaction.rollback()
    finally:
        await conn.close()
    assert answer[0]["id"] == queued[10]
    assert answer[0]["may_release"] is False
    assert read < 10, f"the claim read {read} rows of job_keys for a job with no key"


def one_job(statement: str, job_id: uuid.UUID) -> list[Any]:
    """The arguments of a statement of many (``reports``, ``finishes``, ``heartbeat``) for
    one running job of attempt 1: a progress report, its end, or its beat."""
    if statement == "heartbeat":
        return [[job_id], [1]]
    if statement == "reports":
        return [
            [job_id], [1], ["progress"], [50.0], [None], [None], [None], ["half"],
            ['{"progress": 50.0}'], [None],
        ]  # fmt: skip
    return [[job_id], [1], ["completed"], ['{"rows": 3}'], [None], ["done"], ["{}"]]


@pytest.mark.parametrize("statement", ["reports", "finishes", "heartbeat"])
async def test_a_statement_of_one_job_is_not_planned_again_at_each_run(
    skewed: asyncpg.Connection, statement: str
) -> None:
    # A quiet worker's reports, ends and beats come one job at a time, each a statement of
    # many with one job. Planned for its one row, such a statement looked cheaper than its
    # generic plan (made for a list of any length), so Postgres planned it afresh at every
    # run, which cost about as much as running it. Its ids are now read through a
    # sub-select, whose length no plan knows: after five custom plans, the generic one is
    # kept.
    running = await skewed.fetch(
        "SELECT id FROM jobs WHERE status = 'running' ORDER BY id LIMIT 12"
    )
    for job_id in (r["id"] for r in running):
        answer = await skewed.fetch(QUERIES[statement], *one_job(statement, job_id))
        assert [row["id"] for row in answer] == [job_id]
    plans = await skewed.fetchrow(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
        QUERIES[statement],
    )
    assert plans is not None
    assert (plans["custom_plans"], plans["generic_plans"]) == (5, len(running) - 5)


def debounced_submit(job_id: uuid.UUID, key: str, cap: int) -> list[Any]:
    """debounce_job's arguments: a noop job of the tests' owner with its debounce key,
    under a cap on the owner's active jobs."""
    return [
        job_id, OWNER, "noop", "{}", 0, 3, 60.0, 1.0, [], [], [], '{"status": "pending"}',
        60.0, None, None, None, "Queued", None, cap, "pending", None, None, None, None,
        key, 600.0,
    ]  # fmt: skip


async def test_a_debounced_submit_planned_before_the_jobs_grew_reads_only_its_key(
    new_database: DatabaseFactory,
) -> None:
    # At its cap, a debounced submit asks whether a job it would join is there. Planned on
    # a new install's empty table, a plan that read every job to answer would be kept (a
    # statement's until asyncpg prepares it again, 300 s) while the jobs grow: the unique
    # index of waiting jobs' keys answers it, whatever the plan was made on.
    conn = await owned_database(new_database)
    try:
        # the plan made on the first submit is the one every later submit runs
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        for i in range(10):
            made = await conn.fetchrow(
                QUERIES["debounce_job"], *debounced_submit(uuid.uuid4(), f"first-{i}", 1_000)
            )
            assert made is not None and made["debounce_new"]
        await conn.execute(
            "INSERT INTO jobs (id, owner_id, type, status, debounce_key)"
            " SELECT gen_random_uuid(), $1, 'noop', 'pending', 'k-' || n"
            " FROM generate_series(1, 20000) AS n",
            OWNER,
        )
        answers: dict[str, asyncpg.Record | None] = {}
        reads: dict[str, int] = {}
        for key in ("k-19999", "not-there"):
            transaction = conn.transaction()
            await transaction.start()
            try:
                before = await rows_read_whole(conn)
                answers[key] = await conn.fetchrow(
                    QUERIES["debounce_job"], *debounced_submit(uuid.uuid4(), key, 10)
                )
                reads[key] = await rows_read_whole(conn) - before
            finally:
                await transaction.rollback()
    finally:
        await conn.close()
    # at the cap: a submit with a waiting job's key joins it, one with a new key is refused
    joined = answers["k-19999"]
    assert joined is not None and not joined["debounce_new"]
    assert answers["not-there"] is None
    assert reads == {"k-19999": 0, "not-there": 0}, reads
