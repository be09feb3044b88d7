"""What the admin's searches and bulk actions bring: the filter, as query parameters or a
body's ``filter``, checked before it reaches the database.

A filter names only known fields (an unknown one is a 422 naming it: a typo must not
widen a bulk action to everything), its text is ``Text`` (no NUL reaches Postgres), and
its time range runs forwards. A bulk action needs ids or a filter; ``"all"`` says
"every job" on purpose.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jobcast.errors import BadRequest, InvalidInput
from jobcast.model import JobStatus
from jobcast.store import AdminQuery
from jobcast.text import UNSTORABLE_TEXT, Text
from server.params import validation_details

BULK_IDS_MAX = 10_000

M = TypeVar("M", bound=BaseModel)


class AdminFilter(BaseModel):
    """The fields every admin search and bulk action filters on; unknown ones are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: UUID | None = Field(None, description="Only this owner's jobs.")
    status: JobStatus | None = Field(None, description="Only jobs in this status.")
    type: Text | None = Field(None, max_length=100, description="Only jobs of this type.")
    tag: Text | None = Field(None, max_length=100, description="Only jobs with this tag.")
    tenant: Text | None = Field(None, max_length=200, description="Only this tenant's jobs.")
    subject: Text | None = Field(None, max_length=200, description="Only this subject's jobs.")
    error_class: Text | None = Field(
        None, max_length=200, description="Only jobs whose error is of this class."
    )
    since: datetime | None = Field(None, description="Created at or after (ISO 8601).")
    until: datetime | None = Field(None, description="Created before (ISO 8601).")
    q: Text | None = Field(None, max_length=200, description="Text in the error's message.")

    @model_validator(mode="after")
    def _forwards(self) -> AdminFilter:
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    def query(self) -> AdminQuery:
        return AdminQuery(
            owner=self.owner,
            status=self.status.value if self.status else None,
            type=self.type,
            tag=self.tag,
            tenant=self.tenant,
            subject=self.subject,
            error_class=self.error_class,
            since=self.since,
            until=self.until,
            error_text=self.q,
        )


class AdminJobSearch(AdminFilter):
    """GET /api/admin/jobs: the filter, a page size and the cursor of the page before."""

    limit: int = Field(50, ge=1, le=200, description="At most this many jobs.")
    cursor: Text | None = Field(
        None, max_length=200, description="The next_cursor of the page before."
    )


class BulkAction(BaseModel):
    """POST /api/admin/jobs/{action}: ids, or a filter (``"all"`` for every job)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ids: list[UUID] | None = Field(None, min_length=1, max_length=BULK_IDS_MAX)
    filter: AdminFilter | Literal["all"] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> BulkAction:
        if (self.ids is None) == (self.filter is None):
            raise ValueError(
                'give "ids" or a "filter" (a bulk action without one is refused: '
                'say {"filter": "all"} to act on every job)'
            )
        return self


def parse_search(raw: dict[str, str]) -> AdminJobSearch:
    """Query parameters as a search: 422 for an unknown field, unstorable text or a
    backwards range; 400 for a value of the wrong kind."""
    return parse_model(AdminJobSearch, raw, "query parameter ")


def parse_bulk(body: dict[str, Any]) -> BulkAction:
    return parse_model(BulkAction, body, "")


def parse_model(model: type[M], raw: dict[str, Any], prefix: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(p) for p in error["loc"]) or "body"
        message = f"{prefix}{name}: {error['msg']}"
        if error["type"] in (UNSTORABLE_TEXT, "extra_forbidden", "value_error"):
            raise InvalidInput(message, details=validation_details(exc)) from None
        if prefix:
            raise BadRequest(f"{message}, got {str(raw.get(name, ''))[:40]!r}") from None
        raise InvalidInput(message, details=validation_details(exc)) from None


def encode_cursor(at: datetime, job_id: UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{job_id}".encode()).decode()


def decode_cursor(raw: str) -> tuple[datetime, UUID]:
    try:
        at, _, job_id = base64.urlsafe_b64decode(raw.encode()).decode().partition("|")
        return datetime.fromisoformat(at), UUID(job_id)
    except ValueError:
        raise BadRequest("query parameter cursor: not a cursor this endpoint gave") from None
