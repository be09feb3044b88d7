"""What a request brings, checked before it goes further: query parameters, path ids, bodies.

Each route's query parameters are one pydantic model (the OpenAPI document is built
from the same model); every string a client sends is ``jobcast.text.Text`` or is
walked by ``check_text``, so nothing Postgres cannot store (a NUL, a lone surrogate)
reaches the database. A value of the wrong kind is a 400 naming the parameter; text
that cannot be stored is a 422 naming the field, wherever it was sent.
"""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from jobcast.errors import BadRequest, InvalidInput, NotFound
from jobcast.model import MAX_NAME_CHARS, MAX_TAG_CHARS, JobStatus
from jobcast.text import UNSTORABLE_TEXT, Text, unstorable
from server.auth import Caller, caller_of, owner_of
from server.state import Services

Q = TypeVar("Q", bound=BaseModel)
M = TypeVar("M", bound=BaseModel)


class QueryModel(BaseModel):
    """Query parameters: unknown ones are ignored, an empty one is as if absent."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class JobFilter(QueryModel):
    status: JobStatus | None = Field(None, description="Only jobs in this status.")
    type: Text | None = Field(None, max_length=100, description="Only jobs of this type.")
    limit: int = Field(50, ge=1, le=200, description="At most this many jobs.")


class JobListQuery(JobFilter):
    """``GET /api/jobs``: the caller's jobs (an app key's, a browser token's scope), a page
    at a time; ``cursor`` is the ``next_cursor`` of the page before."""

    tag: Text | None = Field(None, max_length=MAX_TAG_CHARS, description="Only jobs with this tag.")
    subject: Text | None = Field(
        None, max_length=MAX_NAME_CHARS, description="Only jobs for this subject."
    )
    tenant: Text | None = Field(
        None, max_length=MAX_NAME_CHARS, description="Only jobs for this tenant."
    )
    since: AwareDatetime | None = Field(None, description="Only jobs created at or after.")
    cursor: Text | None = Field(None, max_length=200, description="The page after this cursor.")


class AdminJobFilter(JobFilter):
    owner: UUID | None = Field(None, description="Only this owner's jobs.")


class EventWindow(QueryModel):
    after: int = Field(0, ge=0, le=2**62, description="Events after this seq.")
    limit: int = Field(1000, ge=1, le=1000, description="At most this many events.")


def services_of(request: Request) -> Services:
    services: Services = request.state.services
    return services


def query_of(request: Request, model: type[Q]) -> Q:
    """The request's query parameters as ``model``; 400 (422 for unstorable text) if not."""
    raw = {k: v for k, v in request.query_params.items() if v != ""}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(p) for p in error["loc"])
        shown = str(raw.get(name, ""))[:40]
        message = f"query parameter {name}: {error['msg']}, got {shown!r}"
        if error["type"] == UNSTORABLE_TEXT:
            raise InvalidInput(
                message, details=[{"field": name, "message": error["msg"]}]
            ) from None
        raise BadRequest(message) from None


def parse_job_id(raw: str) -> UUID:
    """A job id from the path; a malformed one is a plain 404, like a missing job."""
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound("no such job") from None


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object whose every string (keys too) can be stored."""
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    check_text(body, "")
    return body


def check_text(value: Any, field: str) -> None:
    """InvalidInput naming the field of the first string that cannot be stored."""
    if isinstance(value, str):
        bad = unstorable(value)
        if bad is not None:
            _refuse_text(field or "body", bad)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(str(key), field or "body")  # a key is text too
            check_text(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_text(item, f"{field}.{i}" if field else str(i))


def _refuse_text(field: str, char: str) -> None:
    message = f"contains U+{ord(char):04X}, which cannot be stored"
    raise InvalidInput(f"{field}: {message}", details=[{"field": field, "message": message}])


def body_model(model: type[M], raw: Any) -> M:
    """A JSON body read into its model; InvalidInput naming the first bad field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        details = validation_details(exc)
        raise InvalidInput(
            f"{details[0]['field']}: {details[0]['message']}", details=details
        ) from None


async def posted(request: Request, model: type[M]) -> tuple[Services, UUID, Caller, M]:
    """A POST's services, owner and caller (Unauthorized first), and its JSON body as
    ``model``."""
    services = services_of(request)
    owner_id = await owner_of(request)
    caller = await caller_of(request)
    return services, owner_id, caller, body_model(model, await json_body(request))


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors()
    ]
