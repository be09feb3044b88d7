"""Errors at the edge: each domain error as an HTTP answer, in the one error shape.

``{"error": {"code": ..., "message": ..., "details"?: [...]}}``. The table below is the
only place that knows which status and code a ``jobcast.errors`` class answers with;
the exception handlers, the body-size middleware and websocket refusals all read it.
A class not in the table answers as its nearest listed base class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from jobcast.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Refused,
    StorageUnavailable,
    TokenExpired,
    TooManyRequests,
    Unauthorized,
)
from server.responses import JSONResponse

log = logging.getLogger(__name__)

R = TypeVar("R", bound=type[Refused])

# exception class -> (HTTP status, error code)
ANSWERS: dict[type[Refused], tuple[int, str]] = {
    Refused: (400, "bad_request"),
    BadRequest: (400, "bad_request"),
    Unauthorized: (401, "unauthorized"),
    TokenExpired: (401, "token_expired"),
    Forbidden: (403, "forbidden"),
    NotFound: (404, "not_found"),
    Conflict: (409, "conflict"),
    Gone: (410, "gone"),
    PayloadTooLarge: (413, "payload_too_large"),
    InvalidInput: (422, "invalid_input"),
    TooManyRequests: (429, "too_many_requests"),
    StorageUnavailable: (503, "storage_unavailable"),
}

# the codes of Starlette's own answers (unknown route, wrong method)
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_input",
    429: "too_many_requests",
    503: "unavailable",
}


def answers(status: int, code: str) -> Callable[[R], R]:
    """Class decorator: a refusal defined at the edge (in server/) joins the table."""

    def register(cls: R) -> R:
        ANSWERS[cls] = (status, code)
        return cls

    return register


def answer_of(exc: Refused) -> tuple[int, str]:
    """The status and code of an error: its own class's, else its nearest base's."""
    for cls in type(exc).__mro__:
        if cls in ANSWERS:
            return ANSWERS[cls]
    raise AssertionError("Refused is in the table")  # pragma: no cover


def body_of(exc: Refused) -> dict[str, Any]:
    return _body(answer_of(exc)[1], exc.message, exc.details)


def headers_of(exc: Refused) -> dict[str, str]:
    return {} if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}


def response_of(exc: Refused) -> JSONResponse:
    return JSONResponse(body_of(exc), status_code=answer_of(exc)[0], headers=headers_of(exc))


def _body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


async def refused(_request: Request, exc: Exception) -> Response:
    return response_of(cast(Refused, exc))  # registered for Refused only


async def http_error(_request: Request, exc: Exception) -> Response:
    exc = cast(HTTPException, exc)  # registered for HTTPException only
    body = _body(_HTTP_CODES.get(exc.status_code, "error"), str(exc.detail))
    headers = dict(exc.headers) if exc.headers else None
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(_body("internal", "internal error; it has been logged"), status_code=500)


HANDLERS = {Refused: refused, HTTPException: http_error, Exception: server_error}
