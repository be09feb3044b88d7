"""The bare web baseline: Starlette on uvicorn with asyncpg, and nothing of jobcast.

``GET /jobs/{id}`` reads the job's row and answers it as JSON with an ETag (304 to
a matching ``If-None-Match``); ``WS /ws`` accepts, sends one small message and
waits for the client to leave. It is started with jobcast's own uvicorn options
(``jobcast.dev.web_command``, the app swapped), so the polling and connection
figures put jobcast next to the stack it is built on: no auth, no owner check,
no steps, no pub/sub.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

# $1 job id
SQL_JOB = "SELECT * FROM jobs WHERE id = $1"


async def healthz(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


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


async def socket(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text('{"type":"snapshot"}')
    try:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass
    except WebSocketDisconnect:
        pass


def create_app() -> Starlette:
    dsn = os.environ["DATABASE_URL"]
    pool_size = int(os.environ.get("JOBCAST_PG_POOL_MAX", "10"))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with asyncpg.create_pool(dsn, min_size=1, max_size=pool_size) as pool:
            yield {"pool": pool}

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/jobs/{job_id}", get_job),
            WebSocketRoute("/ws", socket),
        ],
        lifespan=lifespan,
    )
