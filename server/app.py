"""The web process: one lifespan that opens every resource, and one route table."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from prometheus_client.multiprocess import mark_process_dead
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from jobcast import __version__
from jobcast.bus import Hub
from jobcast.circuit import Circuit
from jobcast.errors import StorageUnavailable
from jobcast.eta import Estimator
from jobcast.install import check_install
from jobcast.links import PgLink, RedisLink, circuit_of
from jobcast.listener import Listener
from jobcast.logs import setup_logging
from jobcast.queue import Queue
from jobcast.registry import load_registry
from jobcast.schemas import Health, Readiness
from jobcast.settings import ROOT, Settings, load_settings
from jobcast.store import Store
from jobcast.tasks import TaskState, states
from server import (
    admin,
    admin_limits,
    admin_series,
    batches,
    interaction,
    jobs,
    sessions,
    sockets,
    submit,
    tokens,
    uploads,
)
from server.access import Edge
from server.admin_feed import admin_socket
from server.errors import HANDLERS
from server.limits import BodyLimit, RateLimiter, SocketCaps
from server.openapi import build, endpoint
from server.responses import JSONResponse
from server.scrape import metrics_text as scrape_metrics
from server.security import CrossSiteGuard
from server.state import Services
from server.static_files import StaticSite, page
from server.submits import Submits

log = logging.getLogger(__name__)

STATIC_DIR = ROOT / "static"
_READY_TIMEOUT_S = 2.0
_SOCKET_CLOSE_GRACE_S = 0.3


def lifespan_for(settings: Settings) -> Any:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Services]]:
        setup_logging(settings, "web")
        pg_link, redis_link = PgLink.of(settings), RedisLink.of(settings)
        circuit = Circuit(redis_link, "web")
        async with Store.open(
            settings.database_dsn, max_size=settings.pg_pool_max, link=pg_link
        ) as store:
            await check_install(store, settings)
            redis = redis_link.client(circuit, health_check_s=10)
            hub = Hub(redis, settings)
            listener = Listener(settings.listen_dsn, hub, settings)
            await hub.start()
            await listener.start()
            services = Services(
                settings=settings,
                store=store,
                redis=redis,
                queue=Queue(redis, settings),
                hub=hub,
                listener=listener,
                registry=load_registry(settings.job_module_list),
                limiter=RateLimiter(redis, settings.redis_prefix),
                estimator=Estimator(store),
                submits=Submits(store, settings.gather_wait_ms / 1000),
                sockets={},
                open_sockets=set(),
            )
            restore = _close_sockets_first(services.open_sockets)
            try:
                yield {"services": services}
            finally:
                restore()
                if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                    mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
                await listener.close()
                await hub.close()
                await circuit.close()
                await redis.aclose()

    return lifespan


def _close_sockets_first(open_sockets: set[WebSocket]) -> Callable[[], None]:
    """On SIGTERM/SIGINT, close our websockets with 1001 before the server shuts down.

    uvicorn closes open websockets with 1012 when it stops; 1001 (going away) tells
    clients to reconnect, to another process if there is one. The server's own
    handler, installed before the lifespan starts, runs a moment later.
    """
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    closing: set[asyncio.Task[None]] = set()  # held, so the task is not collected early

    def close_all() -> None:
        task = loop.create_task(sockets.close_all(open_sockets))
        closing.add(task)
        task.add_done_callback(closing.discard)

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(close_all)
        chained = previous[signal.Signals(signum)]
        if callable(chained):
            loop.call_later(_SOCKET_CLOSE_GRACE_S, chained, signum, frame)

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


@endpoint("The process is up", responses={200: Health}, auth=None, tags=("health",))
async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@endpoint(
    "Postgres and Redis both answer; the body gives each dependency's state",
    responses={200: Readiness, 503: Readiness},
    auth=None,
    tags=("health",),
)
async def readyz(request: Request) -> Response:
    """200 only when Postgres and Redis both answer and every background task runs; the
    body says which does not."""
    services: Services = request.state.services
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(_READY_TIMEOUT_S):
            await services.store.ping()
        checks["postgres"] = "ok"
    except (StorageUnavailable, TimeoutError) as exc:
        checks["postgres"] = f"down: {exc}"
    circuit = circuit_of(services.redis)
    try:
        async with asyncio.timeout(_READY_TIMEOUT_S):
            await services.redis.ping()
        checks["redis"] = "ok"
    except (RedisError, OSError, TimeoutError) as exc:
        checks["redis"] = f"down: {type(exc).__name__}"
        if isinstance(exc, TimeoutError) and circuit is not None:
            circuit.trip("no answer to /readyz's PING")
    if circuit is not None:
        checks["redis_circuit"] = circuit.state
    checks["pubsub"] = "ok" if services.hub.healthy else "down"
    checks["listen"] = "ok" if services.listener.connected else "down"
    tasks = states([*services.hub.tasks, *services.listener.tasks])
    ready = (
        checks["postgres"] == "ok"
        and checks["redis"] == "ok"
        and all(state == TaskState.RUNNING for state in tasks.values())
    )
    body = {"status": "ready" if ready else "not ready", "checks": checks, "tasks": tasks}
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics_text(request: Request) -> Response:
    """Prometheus text: behind JOBCAST_METRICS_TOKEN when set, gauges cached (server/scrape.py)."""
    return await scrape_metrics(request)


async def openapi(request: Request) -> Response:
    return JSONResponse(build(routes(), title="jobcast", version=__version__))


def routes() -> list[Any]:
    site = StaticSite(STATIC_DIR)  # versioned, cached and gzipped files (server/static_files.py)
    return [
        Route("/", page(site, "index.html")),
        Route("/jobs/{job_id}", page(site, "index.html")),
        Route("/batches/{batch_id}", page(site, "batch.html")),
        Route("/admin", page(site, "admin.html")),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_text),
        Route("/api/sessions", sessions.create_session, methods=["POST"]),
        Route("/api/tokens", tokens.create_token, methods=["POST"]),
        Route("/api/job-types", jobs.job_types),
        Route("/api/jobs", submit.submit_job, methods=["POST"]),
        Route("/api/jobs/batch", batches.submit_batch, methods=["POST"]),
        Route("/api/batches/{batch_id}", batches.get_batch),
        Route("/api/jobs", jobs.list_jobs, methods=["GET"]),
        Route("/api/jobs/{job_id}", jobs.get_job),
        Route("/api/jobs/{job_id}/events", jobs.job_events),
        Route("/api/jobs/{job_id}/result", jobs.job_result),
        Route("/api/jobs/{job_id}/cancel", jobs.cancel_job, methods=["POST"]),
        Route("/api/jobs/{job_id}/retry", submit.retry_job, methods=["POST"]),
        Route("/api/jobs/{job_id}", interaction.edit_draft, methods=["PATCH"]),
        Route("/api/jobs/{job_id}/input", interaction.answer_input, methods=["POST"]),
        Route("/api/jobs/{job_id}/pause", interaction.pause_job, methods=["POST"]),
        Route("/api/jobs/{job_id}/resume", interaction.resume_job, methods=["POST"]),
        Route("/api/jobs/{job_id}/start", interaction.start_draft, methods=["POST"]),
        Route("/api/uploads", uploads.create_uploads, methods=["POST"]),
        Route("/api/admin/stats", admin.stats),
        Route("/api/admin/series", admin_series.series),
        Route("/api/admin/count", admin.count),
        Route("/api/admin/jobs", admin.jobs),
        Route("/api/admin/jobs/{job_id}", admin.job),
        Route("/api/admin/jobs/{action}", admin.bulk, methods=["POST"]),
        Route("/api/admin/types/{type}/pause", admin.pause_type, methods=["POST"]),
        Route("/api/admin/types/{type}/resume", admin.resume_type, methods=["POST"]),
        Route("/api/admin/limits", admin_limits.list_limits),
        Route("/api/admin/limits/{key}", admin_limits.set_limit, methods=["PUT"]),
        Route("/api/admin/limits/{key}", admin_limits.clear_limit, methods=["DELETE"]),
        Route("/openapi.json", openapi),
        WebSocketRoute("/ws", sockets.owner_socket),
        WebSocketRoute("/ws/admin", admin_socket),
        WebSocketRoute("/ws/jobs/{job_id}", sockets.job_socket),
        WebSocketRoute("/ws/batches/{batch_id}", sockets.batch_socket),
        Mount("/static", app=site, name="static"),
    ]


# What pages poll and read most: a request is tried against the routes in turn, and these
# are the 15th and 16th of the documented order. Matched first, with the one route of
# theirs that could also match their paths (a GET of /api/jobs/batch is a job id that is
# not one, answered by get_job; its POST is the batch) kept ahead of them as before.
_MATCHED_FIRST = (
    ("/api/jobs/batch", "POST"),
    ("/api/jobs/{job_id}", "GET"),
    ("/api/jobs/{job_id}/events", "GET"),
)


def matched_first(all_routes: list[Any]) -> list[Any]:
    """The routes, the most used moved to the front in their own order (``_MATCHED_FIRST``);
    every request is answered by the same route as in the documented order."""

    def rank(route: Any) -> int:
        for i, (path, method) in enumerate(_MATCHED_FIRST):
            if isinstance(route, Route) and route.path == path and method in (route.methods or ()):
                return i
        return len(_MATCHED_FIRST)

    return sorted(all_routes, key=rank)  # stable: the rest keep the documented order


def middleware(settings: Settings) -> list[Middleware]:
    stack = [
        Middleware(Edge, access_log=settings.access_log),
        Middleware(CrossSiteGuard, allowed=settings.origins),
        Middleware(
            SocketCaps,
            per_address=settings.max_sockets_per_address,
            total=settings.max_sockets,
        ),
        Middleware(
            BodyLimit,
            max_bytes=settings.max_body_bytes,
            per_path={"/api/uploads": settings.max_upload_bytes},
        ),
    ]
    if settings.origins:
        # pages of allowed origins (same-site subdomains) may call the API with the cookie
        stack.insert(
            3,
            Middleware(
                CORSMiddleware,
                allow_origins=sorted(settings.origins),
                allow_credentials=True,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "If-None-Match"],
                expose_headers=["ETag", "Retry-After", "Location"],
            ),
        )
    return stack


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    return Starlette(
        routes=matched_first(routes()),
        middleware=middleware(settings),
        lifespan=lifespan_for(settings),
        exception_handlers=HANDLERS,
    )
