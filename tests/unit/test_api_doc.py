"""docs/api.md names every field the API's models give a job and a step, and every route
of the route table, so the page cannot drift from what the server answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import Mount, Route, WebSocketRoute

from jobcast import schemas
from server import api_doc

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


def test_the_committed_page_is_what_the_generator_writes() -> None:
    assert api_doc.render(DOC) == DOC, "docs/api.md is stale: run python -m server.api_doc"


def test_the_generated_tables_follow_a_model_change() -> None:
    """The check can fail: a field added to a model is a row the committed page lacks."""
    doc = api_doc.document()
    doc["components"]["schemas"]["JobOut"]["properties"]["new_field"] = {
        "type": "integer",
        "description": "Added for this test.",
    }
    rendered = api_doc.render(DOC, doc)
    assert rendered != DOC and "| `new_field` | integer | Added for this test. |" in rendered
    route = doc["paths"]["/api/jobs/{job_id}"]["get"]
    route["responses"]["418"] = {"description": "teapot"}
    assert "200 JobOut · 304 · 401 ErrorBody · 404 ErrorBody · 503 ErrorBody · 418" in (
        api_doc.render(DOC, doc)
    )


def test_a_table_naming_a_model_the_api_lacks_is_refused() -> None:
    bad = "<!-- api_doc: model NoSuchModel -->\n<!-- /api_doc -->\n"
    with pytest.raises(SystemExit, match="NoSuchModel"):
        api_doc.render(bad)
