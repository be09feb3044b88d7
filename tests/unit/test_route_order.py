"""The app matches its most used routes first, and every request still reaches the route
(or the 405 of the route) it reaches in the documented order."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import BaseRoute, Match

from server.app import create_app, matched_first, routes

METHODS = ("GET", "HEAD", "POST", "PATCH", "PUT", "DELETE")
JOB = "0b7c8f0e-2a4d-4c35-9a3c-0d3f1c9b2e11"


def paths() -> list[str]:
    """Every route's path with its parameters filled, a job id that is not one, and the
    literal paths under /api/jobs that a job id's route could also take."""
    filled = {
        "job_id": JOB,
        "batch_id": JOB,
        "action": "cancel",
        "type": "noop",
        "key": "owner",
        "path": "app.js",
    }
    found = []
    for route in routes():
        path = getattr(route, "path", "")
        for name, value in filled.items():
            path = path.replace("{" + name + "}", value).replace("{" + name + ":path}", value)
        found.append(path or "/")
    return [*found, "/api/jobs/batch", "/api/jobs/not-a-job", "/api/jobs/batch/events", "/nope"]


def answering(table: list[BaseRoute], path: str, method: str) -> tuple[Any, Match]:
    """The route Starlette's router gives the request: the first full match, else the first
    partial one (its 405), else none."""
    kind = "websocket" if path.startswith("/ws") and method == "GET" else "http"
    scope = {"type": kind, "path": path, "method": method, "root_path": ""}
    partial = None
    for route in table:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route, Match.FULL
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial, Match.PARTIAL if partial is not None else Match.NONE


@pytest.mark.parametrize("method", METHODS)
def test_every_request_reaches_the_route_it_reaches_in_the_documented_order(method: str) -> None:
    documented = routes()
    served = matched_first(documented)
    assert sorted(map(id, served)) == sorted(map(id, documented))
    for path in paths():
        assert answering(served, path, method) == answering(documented, path, method), path


def test_the_app_serves_the_job_and_its_events_first() -> None:
    app = create_app()
    first = [(r.path, sorted(r.methods or ())) for r in app.routes[:3]]  # type: ignore[attr-defined]
    assert first == [
        ("/api/jobs/batch", ["POST"]),
        ("/api/jobs/{job_id}", ["GET", "HEAD"]),
        ("/api/jobs/{job_id}/events", ["GET", "HEAD"]),
    ]
    # the rest keep the documented order
    rest = [r for r in routes() if (r.path, sorted(getattr(r, "methods", None) or ())) not in first]
    assert [getattr(r, "path", None) for r in app.routes[3:]] == [
        getattr(r, "path", None) for r in rest
    ]
