"""The OpenAPI document, generated from the route table and the pydantic models.

Each handler declares its contract with ``@endpoint(...)``: the request model,
its query parameters and the model of each answer. The document below is built
from those declarations and ``jobcast.schemas``, the same models the handlers
answer with, so the contract is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.routing import BaseRoute, Route

from jobcast.schemas import ErrorBody

F = TypeVar("F", bound=Callable[..., Any])

_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    304: "Not modified",
    400: "Bad request",
    401: "No valid owner token",
    403: "Forbidden",
    404: "No such job for this owner",
    405: "Method not allowed",
    409: "Conflict with the job's state",
    410: "Gone",
    413: "Body too large",
    422: "Invalid input",
    429: "Too many requests (see Retry-After)",
    503: "Storage unavailable",
}


@dataclass(frozen=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Operation:
    summary: str
    responses: dict[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    query: tuple[Query, ...] = ()
    auth: str | None = "owner"  # "owner", "admin" or None
    tags: tuple[str, ...] = field(default=("jobs",))


def endpoint(
    summary: str,
    *,
    responses: dict[int, type[BaseModel] | None],
    body: type[BaseModel] | None = None,
    query: Iterable[Query] = (),
    auth: str | None = "owner",
    tags: tuple[str, ...] = ("jobs",),
) -> Callable[[F], F]:
    """Declare a handler's contract; errors in the one error shape are added by status."""

    def mark(handler: F) -> F:
        handler.__openapi__ = Operation(  # type: ignore[attr-defined]
            summary, responses, body, tuple(query), auth, tags
        )
        return handler

    return mark


def build(routes: Iterable[BaseRoute], *, title: str, version: str) -> dict[str, Any]:
    operations: list[tuple[str, str, Route, Operation]] = []
    for route in routes:
        if not isinstance(route, Route):
            continue
        op: Operation | None = getattr(route.endpoint, "__openapi__", None)
        if op is None:
            continue
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            operations.append((route.path, method.lower(), route, op))

    models: set[type[BaseModel]] = {ErrorBody}
    for _, _, _, op in operations:
        models.update(m for m in op.responses.values() if m is not None)
        if op.body is not None:
            models.add(op.body)
    keyed: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation" if _is_body(m, operations) else "serialization") for m in models
    ]
    refs, definitions = models_json_schema(
        sorted(keyed, key=lambda pair: pair[0].__name__),
        ref_template="#/components/schemas/{model}",
    )

    def ref(model: type[BaseModel], mode: str = "serialization") -> dict[str, Any]:
        return refs[(model, mode)]  # type: ignore[index]

    paths: dict[str, dict[str, Any]] = {}
    for path, method, route, op in operations:
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in route.param_convertors
        ]
        parameters += [
            {
                "name": q.name,
                "in": "query",
                "required": False,
                "schema": q.schema,
                "description": q.description,
            }
            for q in op.query
        ]
        responses: dict[str, Any] = {}
        for status, model in sorted(op.responses.items()):
            answer: dict[str, Any] = {"description": _REASONS.get(status, "")}
            if model is not None:
                answer["content"] = {"application/json": {"schema": ref(model)}}
            responses[str(status)] = answer
        operation: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{method}_{path}".replace("/", "_").replace("{", "").replace("}", ""),
            "tags": list(op.tags),
            "parameters": parameters,
            "responses": responses,
        }
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body, "validation")}},
            }
        if op.auth == "owner":
            operation["security"] = [{"bearer": []}, {"session": []}]
        elif op.auth == "admin":
            operation["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[method] = operation

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "jobcast_session"},
            },
        },
    }


def _is_body(model: type[BaseModel], operations: list[tuple[str, str, Route, Operation]]) -> bool:
    return any(op.body is model for _, _, _, op in operations)


def error_responses(*statuses: int) -> dict[int, type[BaseModel] | None]:
    return {status: ErrorBody for status in statuses}
