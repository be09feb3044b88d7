"""What a list of jobs asks the store for: the caller's filters, within a token's scope."""

from __future__ import annotations

from typing import Any

from jobcast.store import Cursor, ListQuery
from jobcast.tokens import TokenScope
from server.params import JobListQuery


def list_query(asked: JobListQuery, scope: TokenScope | None) -> ListQuery:
    """The store's query for ``GET /api/jobs``; a browser token adds its scope's conditions."""
    return ListQuery(
        status=asked.status.value if asked.status else None,
        type=asked.type,
        tag=asked.tag,
        subject=asked.subject,
        tenant=asked.tenant,
        since=asked.since,
        after=Cursor.decode(asked.cursor) if asked.cursor else None,
        limit=asked.limit,
        **within(scope),
    )


def within(scope: TokenScope | None) -> dict[str, Any]:
    """A browser token's scope as the store's conditions (none without a token)."""
    if scope is None:
        return {}
    return {
        "scope_jobs": sorted(scope.jobs) or None,
        "scope_tags": sorted(scope.tags) or None,
        "scope_subject": scope.subject,
        "scope_tenant": scope.tenant,
    }
