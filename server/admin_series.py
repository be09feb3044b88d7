"""The console's charts: per-bucket numbers over the last hour or day, aligned on one time
axis (what uPlot draws): jobs finished per minute, failure rate, p50/p95 run time and wait
by type and for all, queue depth, and status changes per second."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from server.admin_access import require_admin_role
from server.admin_filters import parse_model
from server.openapi import endpoint, error_responses
from server.params import services_of
from server.responses import JSONResponse

WINDOWS = {"hour": (3600, 60), "day": (86_400, 600)}  # seconds of history, bucket seconds


class SeriesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window: Literal["hour", "day"] = Field("hour", description="The last hour or day.")


def _line(n: int) -> list[float | None]:
    return [None] * n


def _aligned(raw: dict[str, list[Any]], bucket_s: int) -> dict[str, Any]:
    times = [int(r["t"].timestamp()) for r in raw["depth"]]
    index = {t: i for i, t in enumerate(times)}
    n = len(times)
    per_min = 60 / bucket_s
    groups: dict[str, dict[str, list[float | None]]] = {}
    for row in raw["jobs"]:
        i = index.get(int(row["t"].timestamp()))
        if i is None:
            continue
        name = row["type"] if row["type"] is not None else "*"
        g = groups.setdefault(
            name,
            {
                k: _line(n)
                for k in (
                    "finished_per_min",
                    "failure_rate",
                    "run_p50",
                    "run_p95",
                    "wait_p50",
                    "wait_p95",
                )
            },
        )
        g["finished_per_min"][i] = round(row["finished"] * per_min, 3)
        g["failure_rate"][i] = round(row["failed"] / row["finished"], 4) if row["finished"] else 0
        for key in ("run_p50", "run_p95", "wait_p50", "wait_p95"):
            g[key][i] = round(row[key], 3) if row[key] is not None else None
    events = _line(n)
    for row in raw["events"]:
        i = index.get(int(row["t"].timestamp()))
        if i is not None:
            events[i] = round(row["n"] / bucket_s, 3)
    return {
        "bucket_s": bucket_s,
        "t": times,
        "all": groups.pop("*", None),
        "types": groups,
        "queue_depth": [r["depth"] for r in raw["depth"]],
        "events_per_s": events,
    }


@endpoint(
    "Per-minute series over the last hour or day, for the console's charts",
    responses={200: None, **error_responses(401, 403, 422, 503)},
    query=SeriesQuery,
    auth="admin",
    tags=("admin",),
)
async def series(request: Request) -> Response:
    await require_admin_role(request)
    wanted = parse_model(SeriesQuery, dict(request.query_params), "query parameter ")
    window_s, bucket_s = WINDOWS[wanted.window]
    raw = await services_of(request).store.series(window_s, bucket_s)
    return JSONResponse(_aligned(raw, bucket_s))
