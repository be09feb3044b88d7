"""Which failures of job code are retried: httpx's by default, and a type's own classes."""

from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel

from jobcast.registry import JobType
from workers.runner import classify

_REQUEST = httpx.Request("GET", "https://feed.example/products.csv")


def _status_error(code: int) -> httpx.HTTPStatusError:
    response = httpx.Response(code, request=_REQUEST)
    return httpx.HTTPStatusError(f"status {code}", request=_REQUEST, response=response)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused", request=_REQUEST),
        httpx.ConnectTimeout("connect timed out", request=_REQUEST),
        httpx.ReadTimeout("read timed out", request=_REQUEST),
        httpx.WriteTimeout("write timed out", request=_REQUEST),
        httpx.PoolTimeout("no connection free", request=_REQUEST),
        httpx.ReadError("reset", request=_REQUEST),
        httpx.RemoteProtocolError("server disconnected", request=_REQUEST),
        httpx.ProxyError("proxy down", request=_REQUEST),
        _status_error(503),
        _status_error(429),
    ],
    ids=lambda e: type(e).__name__ + getattr(getattr(e, "response", None), "reason_phrase", ""),
)
def test_httpx_failures_to_reach_a_host_are_transient(exc: Exception) -> None:
    assert classify(exc) == "transient"


@pytest.mark.parametrize(
    "exc",
    [
        httpx.UnsupportedProtocol("Request URL is missing an 'http://' or 'https://' protocol."),
        httpx.InvalidURL("Invalid non-printable ASCII character in URL"),
    ],
)
def test_a_url_httpx_cannot_use_is_permanent(exc: Exception) -> None:
    assert classify(exc) == "permanent"


def test_a_client_error_status_is_left_to_the_attempts() -> None:
    assert classify(_status_error(404)) == "unknown"


def test_httpx_errors_raised_for_real_are_transient() -> None:
    # a port nothing listens on: the error httpx itself raises, not one built by hand
    with pytest.raises(httpx.HTTPError) as info:
        httpx.get("http://127.0.0.1:9/", timeout=2)
    assert classify(info.value) == "transient"
    with pytest.raises(httpx.HTTPError) as info:
        httpx.get("feed.example/products.csv")
    assert classify(info.value) == "permanent"


class _Quota(Exception):
    """An SDK's own error for a rate limit."""


class _Params(BaseModel):
    pass


async def _run(job: object, params: _Params) -> None:
    return None


def _job_type(**options: object) -> JobType:
    return JobType(name="t", title="T", input_model=_Params, run=_run, **options)  # type: ignore[arg-type]


def test_a_job_type_names_more_retryable_classes() -> None:
    assert classify(_Quota("slow down")) == "unknown"
    assert classify(_Quota("slow down"), _job_type()) == "unknown"
    assert classify(_Quota("slow down"), _job_type(retry_on=(_Quota,))) == "transient"
    # subclasses too, and a list is accepted
    sub = type("_DailyQuota", (_Quota,), {})
    assert classify(sub("tomorrow"), _job_type(retry_on=[_Quota])) == "transient"
    # other errors keep their class
    assert classify(ValueError("x"), _job_type(retry_on=(_Quota,))) == "unknown"


def test_retry_on_refuses_what_is_not_an_exception_class() -> None:
    with pytest.raises(ValueError, match="retry_on"):
        _job_type(retry_on=("Quota",))
