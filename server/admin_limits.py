"""Run-time limits of concurrency keys and throttles: ``/api/admin/limits``.

An operator's limit replaces what jobs declared for a key, at each job's next start,
without a restart: lowering it lets running jobs finish and starts no more until the
key is under it; raising it (or clearing it) releases the jobs parked on the key at
once. Reading needs the admin or the read-only operator token; changing, the admin's.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from pydantic import Field, ValidationError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from jobcast.concurrency import KeyName, Kind, LimitIn
from jobcast.errors import InvalidInput, NotFound
from jobcast.queue import Queued
from jobcast.schemas import Model
from jobcast.store import KeyLimitRow
from server.admin_access import require_actor, require_admin_role
from server.openapi import endpoint, error_responses
from server.params import body_model, json_body, services_of, validation_details
from server.responses import model_response
from server.state import Services

log = logging.getLogger(__name__)


class LimitOut(Model):
    key: str
    kind: Literal["concurrency", "throttle"]
    limit: int
    period_s: float | None
    set_by: str
    updated_at: datetime
    running: int | None = Field(None, description="Jobs holding the key now (concurrency).")
    parked: int = Field(0, description="Jobs parked on the key now.")

    @classmethod
    def of(cls, row: KeyLimitRow) -> LimitOut:
        return cls(
            key=row.key,
            kind=row.kind,
            limit=row.limit,
            period_s=row.period_s,
            set_by=row.set_by,
            updated_at=row.updated_at,
            running=row.running,
            parked=row.parked,
        )


class LimitList(Model):
    limits: list[LimitOut]


class Released(Model):
    key: str
    released: int = Field(description="Parked jobs the key now had room for, queued.")


def _key_of(request: Request) -> str:
    try:
        return KeyName(key=request.path_params["key"]).key
    except ValidationError as exc:
        details = [{**d, "field": "key"} for d in validation_details(exc)]
        raise InvalidInput(f"key: {details[0]['message']}", details=details) from None


async def release(services: Services, key: str) -> int:
    """Queue the jobs parked on ``key`` that it has room for now; how many."""
    rows = await services.store.release_key(key)
    try:
        await services.queue.enqueue_many(Queued.rows(rows))
    except (RedisError, OSError) as exc:  # released in Postgres: the outbox queues them
        log.warning("limits: %d jobs released on %s not queued yet (%s)", len(rows), key, exc)
    return len(rows)


@endpoint(
    "The operator's limits of concurrency keys and throttles, with each key's jobs now",
    responses={200: LimitList, **error_responses(401, 403, 503)},
    auth="admin",
    tags=("admin",),
)
async def list_limits(request: Request) -> Response:
    await require_admin_role(request)
    rows = await services_of(request).store.key_limits()
    return model_response(LimitList(limits=[LimitOut.of(r) for r in rows]))


@endpoint(
    "Set a key's limit at run time: a concurrency limit, or with period_s a throttle",
    body=LimitIn,
    responses={200: Released, **error_responses(400, 401, 403, 422, 503)},
    auth="admin",
    tags=("admin",),
)
async def set_limit(request: Request) -> Response:
    actor = await require_actor(request)
    key = _key_of(request)
    wanted = body_model(LimitIn, await json_body(request))
    services = services_of(request)
    kind: Kind = "concurrency" if wanted.period_s is None else "throttle"
    await services.store.set_key_limit(key, kind, wanted.limit, wanted.period_s, actor)
    log.info("admin: %s set the %s limit of %s to %d", actor, kind, key, wanted.limit)
    return model_response(Released(key=key, released=await release(services, key)))


@endpoint(
    "Clear a key's run-time limits: its jobs' own limits apply again",
    responses={200: Released, **error_responses(401, 403, 404, 422, 503)},
    auth="admin",
    tags=("admin",),
)
async def clear_limit(request: Request) -> Response:
    actor = await require_actor(request)
    key = _key_of(request)
    services = services_of(request)
    if not await services.store.clear_key_limit(key):
        raise NotFound(f"no run-time limit for key {key[:100]!r}")
    log.info("admin: %s cleared the limits of %s", actor, key)
    return model_response(Released(key=key, released=await release(services, key)))
