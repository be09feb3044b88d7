"""The bare web baseline: Starlette on uvicorn with asyncpg, and nothing of jobcast.

``POST /jobs`` does the least a service that takes jobs over HTTP must: it
INSERTs the job's row (id, owner, type, input) into a scratch table and puts it on
the raw arq queue (``bench.rawarq``) with arq's own ``enqueue_job``, then answers
202 with the id. ``GET /jobs/{id}`` reads a job's row from jobcast's table and
answers it as JSON with an ETag (304 to a matching ``If-None-Match``), and
``GET /jobs/{id}/whole`` reads it as jobcast's own statement does, with its steps,
children, webhook tries and streams, and answers it as JSON (the least a ``GET`` that
answers what jobcast's API promises does); ``WS /ws``
accepts, sends one small message and waits for the client to leave; ``WS /ws/jobs/{id}``
does the same with the job's row read from jobcast's table as its message; ``WS /fan`` does
the same and gets every message published on the app's fan-out channel, sent to each
open ``/fan`` socket in turn (the least a broadcast over Redis pub/sub does); ``WS /feed/{key}``
gets what is published on its key's channel (one pattern subscription for all of them: the
least a process delivering many jobs' events over pub/sub does). It is started
with jobcast's own uvicorn options (``jobcast.dev.web_command``, the app swapped),
so the throughput, polling and connection figures put jobcast next to the stack
it is built on: no auth, no owner check, no validation, no steps, no events, no
pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson
import redis.asyncio as aioredis
from arq.connections import ArqRedis, RedisSettings, create_pool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bench.rawarq import events_channel, keep_as_is, raw_queue
from jobcast.settings import load_settings
from jobcast.sql import QUERIES
from jobcast.store.base import json_codecs

# $1 job id
SQL_JOB = "SELECT * FROM jobs WHERE id = $1"

# the least a submit stores: the job's id, owner, type and input; and, for the jobs whose
# type ends in EVENTED, the least a job's events need: the job's last seq, and each change
# of the job as an event row numbered by it
SQL_SCRATCH = """
CREATE TABLE IF NOT EXISTS bench_submit (
    id uuid PRIMARY KEY,
    owner_id uuid NOT NULL,
    type text NOT NULL,
    input jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    seq integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);
CREATE TABLE IF NOT EXISTS bench_submit_events (
    job_id uuid NOT NULL,
    seq integer NOT NULL,
    kind text NOT NULL,
    payload jsonb NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, seq)
)"""
# $1 id, $2 owner_id, $3 type, $4 input
SQL_INSERT = "INSERT INTO bench_submit (id, owner_id, type, input) VALUES ($1, $2, $3, $4)"
EVENTED = "_evented"
# the same, with the job's first event in the same statement
SQL_INSERT_EVENTED = """
WITH j AS (
    INSERT INTO bench_submit (id, owner_id, type, input, seq) VALUES ($1, $2, $3, $4, 1)
    RETURNING id
)
INSERT INTO bench_submit_events (job_id, seq, kind, payload)
SELECT id, 1, 'status', '{"status": "pending"}' FROM j"""
# every job of the bare app belongs to one owner
OWNER = UUID("00000000-0000-0000-0000-00000000b0a5")


async def healthz(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def create_job(request: Request) -> Response:
    body = orjson.loads(await request.body())
    job_id = uuid4()
    pool: asyncpg.Pool = request.state.pool
    arq: ArqRedis = request.state.arq
    job_input = orjson.dumps(body["input"]).decode()
    if body["type"].endswith(EVENTED):  # and the event published, as watchers get it
        await pool.execute(SQL_INSERT_EVENTED, job_id, OWNER, body["type"], job_input)
        await arq.publish(request.state.events, orjson.dumps({"id": str(job_id), "seq": 1}))
    else:
        await pool.execute(SQL_INSERT, job_id, OWNER, body["type"], job_input)
    await arq.enqueue_job(
        body["type"], str(job_id), _job_id=f"bare-{job_id}", _queue_name=request.state.queue
    )
    return Response(
        orjson.dumps({"id": str(job_id)}), status_code=202, media_type="application/json"
    )


async def get_job(request: Request) -> Response:
    try:
        job_id = UUID(request.path_params["job_id"])
    except ValueError:
        return Response(status_code=404)
    pool: asyncpg.Pool = request.state.pool
    row = await pool.fetchrow(SQL_JOB, job_id)
    if row is None:
        return Response(status_code=404)
    etag = f'W/"{row["id"]}-{row["seq"]}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    body = orjson.dumps(dict(row), default=str)  # asyncpg's own UUID type, as text
    return Response(body, media_type="application/json", headers=headers)


async def get_whole_job(request: Request) -> Response:
    """The job as jobcast's API answers it, read by jobcast's own statement (its JSON columns
    decoded as jobcast's store does): no token, no owner check, no model, no ETA."""
    try:
        job_id = UUID(request.path_params["job_id"])
    except ValueError:
        return Response(status_code=404)
    pool: asyncpg.Pool = request.state.json_pool
    row = await pool.fetchrow(QUERIES["get_job"], job_id, None)
    if row is None:
        return Response(status_code=404)
    body = orjson.dumps(dict(row), default=str)
    headers = {"ETag": f'W/"{row["id"]}-{row["seq"]}"', "Cache-Control": "no-cache"}
    return Response(body, media_type="application/json", headers=headers)


async def until_gone(ws: WebSocket) -> None:
    """Wait for the client to leave, reading (and dropping) whatever it sends."""
    try:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass
    except WebSocketDisconnect:
        pass


async def socket(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text('{"type":"snapshot"}')
    await until_gone(ws)


async def job_socket(ws: WebSocket) -> None:
    """The least a socket that starts from the job's stored state does: it reads the job's
    row and sends it, then waits (no auth, no subscription, no events replayed)."""
    await ws.accept()
    pool: asyncpg.Pool = ws.state.pool
    row = await pool.fetchrow(SQL_JOB, UUID(ws.path_params["job_id"]))
    await ws.send_text(
        orjson.dumps({"type": "snapshot", "job": dict(row or {})}, default=str).decode()
    )
    await until_gone(ws)


def fan_channel(prefix: str) -> str:
    """The bare app's broadcast channel: what is published there goes to every /fan socket."""
    return f"{prefix}:bare-fan"


async def fan_socket(ws: WebSocket) -> None:
    fans: set[WebSocket] = ws.state.fans
    await ws.accept()
    await ws.send_text('{"type":"snapshot"}')
    fans.add(ws)
    try:
        await until_gone(ws)
    finally:
        fans.discard(ws)


async def fan_out(redis: aioredis.Redis, channel: str, fans: set[WebSocket]) -> None:
    """Send each message of ``channel`` to every /fan socket, one after the other."""
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(channel)
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            text = message["data"].decode()
            for ws in tuple(fans):
                with contextlib.suppress(Exception):  # a socket that left meanwhile
                    await ws.send_text(text)


def feed_channel(prefix: str, key: str) -> str:
    """A /feed socket's channel: what is published there goes to the socket of that key."""
    return f"{prefix}:bare-feed:{key}"


async def feed_socket(ws: WebSocket) -> None:
    feeds: dict[str, WebSocket] = ws.state.feeds
    key = ws.path_params["key"]
    await ws.accept()
    await ws.send_text('{"type":"snapshot"}')
    feeds[key] = ws
    try:
        await until_gone(ws)
    finally:
        feeds.pop(key, None)


async def feed_out(redis: aioredis.Redis, prefix: str, feeds: dict[str, WebSocket]) -> None:
    """Send each message of a feed's channel to that feed's socket."""
    start = len(feed_channel(prefix, ""))
    async with redis.pubsub() as pubsub:
        await pubsub.psubscribe(feed_channel(prefix, "*"))
        async for message in pubsub.listen():
            if message["type"] != "pmessage":
                continue
            ws = feeds.get(message["channel"][start:].decode())
            if ws is not None:
                with contextlib.suppress(Exception):  # a socket that left meanwhile
                    await ws.send_text(message["data"].decode())


def create_app() -> Starlette:
    dsn = os.environ["DATABASE_URL"]
    pool_size = int(os.environ.get("JOBCAST_PG_POOL_MAX", "10"))
    redis = RedisSettings.from_dsn(os.environ["REDIS_URL"])
    settings = load_settings()
    queue = raw_queue(settings)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with (
            asyncpg.create_pool(dsn, min_size=1, max_size=pool_size, reset=keep_as_is) as pool,
            asyncpg.create_pool(
                dsn, min_size=1, max_size=pool_size, reset=keep_as_is, init=json_codecs
            ) as json_pool,
        ):
            await pool.execute(SQL_SCRATCH)
            arq = await create_pool(redis)
            fans: set[WebSocket] = set()
            fanning = asyncio.create_task(fan_out(arq, fan_channel(settings.redis_prefix), fans))
            feeds: dict[str, WebSocket] = {}
            feeding = asyncio.create_task(feed_out(arq, settings.redis_prefix, feeds))
            try:
                yield {
                    "pool": pool,
                    "json_pool": json_pool,
                    "arq": arq,
                    "queue": queue,
                    "events": events_channel(settings.redis_prefix),
                    "fans": fans,
                    "feeds": feeds,
                }
            finally:
                for task in (fanning, feeding):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await arq.aclose()

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/jobs", create_job, methods=["POST"]),
            Route("/jobs/{job_id}", get_job),
            Route("/jobs/{job_id}/whole", get_whole_job),
            WebSocketRoute("/ws", socket),
            WebSocketRoute("/ws/jobs/{job_id}", job_socket),
            WebSocketRoute("/fan", fan_socket),
            WebSocketRoute("/feed/{key}", feed_socket),
        ],
        lifespan=lifespan,
    )
