"""The OpenAPI document, generated from the route table and the pydantic models.

Each handler declares its contract with ``@endpoint(...)``: the request model,
the model of its query parameters and the model of each answer. The document below
is built from those declarations and ``jobcast.schemas``, the same models the
handlers validate with and answer with, so the contract is written once.
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
class Operation:
    summary: str
    responses: dict[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    auth: str | None = "owner"  # "owner", "admin" or None
    tags: tuple[str, ...] = field(default=("jobs",))


def endpoint(
    summary: str,
    *,
    responses: dict[int, type[BaseModel] | None],
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    auth: str | None = "owner",
    tags: tuple[str, ...] = ("jobs",),
) -> Callable[[F], F]:
    """Declare a handler's contract; errors in the one error shape are added by status."""

    def mark(handler: F) -> F:
        handler.__openapi__ = Operation(  # type: ignore[attr-defined]
            summary, responses, body, query, auth, tags
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
        if op.query is not None:
            parameters += query_parameters(op.query)
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


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query parameters of a model of ``server.params``, each with its own schema.

    An absent parameter is the field's default, so ``X | None`` is declared as ``X``;
    references to shared definitions (an enum) are written out in place.
    """
    schema = model.model_json_schema()
    definitions = schema.get("$defs", {})
    parameters = []
    for name, field_schema in schema["properties"].items():
        inline = _inline(field_schema, definitions)
        description = inline.pop("description", "")
        inline.pop("title", None)
        inline.pop("default", None)
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", ()),
                "schema": inline,
                "description": description,
            }
        )
    return parameters


def _inline(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        found = dict(definitions[schema["$ref"].rsplit("/", 1)[-1]])
        found.pop("title", None)
        return found | {k: v for k, v in schema.items() if k != "$ref"}
    options = [s for s in schema.get("anyOf", ()) if s.get("type") != "null"]
    if "anyOf" in schema and len(options) == 1:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return _inline(options[0], definitions) | rest
    return dict(schema)


def _is_body(model: type[BaseModel], operations: list[tuple[str, str, Route, Operation]]) -> bool:
    return any(op.body is model for _, _, _, op in operations)


def error_responses(*statuses: int) -> dict[int, type[BaseModel] | None]:
    return {status: ErrorBody for status in statuses}
