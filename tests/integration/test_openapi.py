"""The OpenAPI document describes every route, and a bounded schemathesis run agrees.

The run sends generated requests to the real service and checks that none gets a
5xx and that every answer fits its documented status and schema.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks
from starlette.routing import Route

from server.app import routes
from server.openapi import build
from tests.support import Stack

SPEC = build(routes(), title="jobcast", version="test")
schema = schemathesis.openapi.from_dict(SPEC)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def test_every_http_route_is_described() -> None:
    undocumented = [
        (route.path, method)
        for route in routes()
        if isinstance(route, Route)
        and route.path
        not in ("/", "/jobs/{job_id}", "/batches/{batch_id}", "/admin", "/openapi.json", "/metrics")
        for method in (route.methods or set()) - {"HEAD"}
        if method.lower() not in SPEC["paths"].get(route.path, {})
    ]
    assert undocumented == []
    submit = SPEC["paths"]["/api/jobs"]["post"]
    body = submit["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/SubmitRequest")
    assert {"202", "400", "401", "413", "422", "429", "503"} <= set(submit["responses"])


@pytest.mark.parametrize(
    ("path", "names"),
    [
        ("/api/jobs", {"status", "type", "limit", "tag", "subject", "tenant", "since", "cursor"}),
        (
            "/api/admin/jobs",
            {"status", "type", "limit", "owner", "tag", "tenant", "subject", "error_class"}
            | {"since", "until", "q", "cursor"},
        ),
        ("/api/jobs/{job_id}/events", {"after", "limit"}),
    ],
)
def test_query_parameters_are_declared_with_what_they_accept(path: str, names: set[str]) -> None:
    """Generated requests reach every query parameter, a NUL in text ones included."""
    declared = {
        p["name"]: p["schema"]
        for p in SPEC["paths"][path]["get"]["parameters"]
        if p["in"] == "query"
    }
    assert set(declared) == names
    for name, schema in declared.items():
        if schema.get("type") == "string" and "enum" not in schema and "format" not in schema:
            assert schema["pattern"] == "^[^\\x00]*$", name
    if "status" in declared:
        assert "pending" in declared["status"]["enum"]


async def test_the_service_serves_the_same_document(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        served = (await client.get("/openapi.json")).json()
    assert served["paths"] == SPEC["paths"]
    assert served["components"] == SPEC["components"]


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    response = httpx.post(f"{stack.base_url}/api/sessions")
    assert response.status_code == 201
    token: str = response.json()["token"]
    return token


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_no_5xx_and_fit_the_schema(
    case: schemathesis.Case, stack: Stack, token: str
) -> None:
    case.call_and_validate(
        base_url=stack.base_url,
        headers={"Authorization": f"Bearer {token}"},
        checks=CHECKS,
    )
