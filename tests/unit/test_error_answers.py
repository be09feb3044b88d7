"""Domain errors know nothing of HTTP; the edge answers each with its own status and code."""

from __future__ import annotations

import orjson
import pytest

from jobcast import errors
from jobcast.errors import InvalidInput, NotFound, Refused, StorageUnavailable, TooManyRequests
from server.errors import ANSWERS, response_of

REFUSALS = sorted(
    {c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Refused)},
    key=lambda c: c.__name__,
)


@pytest.mark.parametrize("cls", REFUSALS, ids=lambda c: c.__name__)
def test_a_domain_error_carries_no_http(cls: type[Refused]) -> None:
    error = cls("what went wrong")
    assert not {"status", "status_code", "code", "headers", "body"} & set(dir(error))
    assert cls.__doc__, f"{cls.__name__} says what to do about it"


@pytest.mark.parametrize("cls", REFUSALS, ids=lambda c: c.__name__)
def test_each_domain_error_is_in_the_table(cls: type[Refused]) -> None:
    assert cls in ANSWERS


@pytest.mark.parametrize(
    ("error", "status", "code", "headers"),
    [
        (NotFound("no such job"), 404, "not_found", {}),
        (StorageUnavailable("Postgres does not answer"), 503, "storage_unavailable", {}),
        (
            TooManyRequests("too many submits", retry_after_s=7),
            429,
            "too_many_requests",
            {"retry-after": "7"},
        ),
    ],
)
def test_the_edge_answers_in_the_one_error_shape(
    error: Refused, status: int, code: str, headers: dict[str, str]
) -> None:
    response = response_of(error)
    assert response.status_code == status
    assert orjson.loads(response.body) == {"error": {"code": code, "message": error.message}}
    assert {k: v for k, v in response.headers.items() if k == "retry-after"} == headers


def test_details_name_the_fields() -> None:
    details = [{"field": "input.duration", "message": "must be positive"}]
    body = orjson.loads(response_of(InvalidInput("input.duration: bad", details=details)).body)
    assert body["error"]["details"] == details


def test_a_subclass_answers_as_its_nearest_listed_base() -> None:
    class UnknownUpload(InvalidInput):
        """An upload id that is not this owner's."""

    assert response_of(UnknownUpload("no upload")).status_code == 422
