"""docs/api.md names every field the API's models give a job and a step, and every route
of the route table, so the page cannot drift from what the server answers."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Mount, Route, WebSocketRoute

from jobcast import schemas

DOC = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()


def section(title: str) -> str:
    return DOC.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def named(text: str) -> set[str]:
    return set(re.findall(r"[a-z_]+", text))


def test_every_field_of_a_job_and_of_a_step_is_in_the_doc() -> None:
    words = named(section("The job"))
    missing = {
        "job": [f for f in schemas.JobOut.model_fields if f not in words],
        "step": [f for f in schemas.StepOut.model_fields if f not in words],
    }
    assert missing == {"job": [], "step": []}


def test_every_job_route_is_in_the_doc() -> None:
    from server.app import routes

    paths = []
    for route in routes():
        if isinstance(route, Route | WebSocketRoute) and route.path.startswith(
            ("/api/jobs", "/ws/jobs")
        ):
            for method in sorted((getattr(route, "methods", None) or {"WS"}) - {"HEAD"}):
                paths.append((method, route.path.replace("{job_id}", "{id}")))
        assert not isinstance(route, Mount) or not route.path.startswith("/api/jobs")
    undocumented = [
        f"{m} {p}"
        for m, p in paths
        if f"{m if m != 'WS' else 'WS'} {p}" not in DOC.replace("`", "")
    ]
    assert undocumented == []
