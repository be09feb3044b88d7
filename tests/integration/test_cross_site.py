"""Cross-site request forgery: a foreign page cannot act with the visitor's session cookie.

Each request here is what a browser would send for a page of that origin: its
``Origin`` (and ``Sec-Fetch-Site``), the session cookie, and the body type a form
or a no-cors fetch can send. tests/browser/test_cross_site.py does the same from a
real page in Chromium.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from jobcast.endpoints import Endpoints
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.support import Stack, launch

ALLOWED = "https://app.example.com"
FOREIGN = "http://127.0.0.1:1"  # the same site (host), another origin (port)
JOB = '{"type": "noop", "input": {}, "delay_seconds": 600}'


@pytest.fixture(scope="module")
async def site(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("cross-site"),
        JOBCAST_ALLOWED_ORIGINS=ALLOWED,
    )
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
async def visitor(site: Stack) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A browser with a session: its cookie jar, and the token (to check with a bearer)."""
    own = site.base_url
    async with httpx.AsyncClient(base_url=own) as browser:
        response = await browser.post("/api/sessions", headers={"Origin": own})
        assert response.status_code == 201
        yield browser, response.json()["token"]


def page(origin: str | None, site_header: str | None = None, **more: str) -> dict[str, str]:
    headers = {"Content-Type": "text/plain", **more}
    if origin is not None:
        headers["Origin"] = origin
    if site_header is not None:
        headers["Sec-Fetch-Site"] = site_header
    return headers


async def jobs_of(site: Stack, token: str) -> list[dict[str, object]]:
    async with site.client(token) as client:
        jobs: list[dict[str, object]] = (await client.get("/api/jobs")).json()["jobs"]
    return jobs


async def test_a_foreign_page_cannot_submit_with_the_cookie(
    site: Stack, visitor: tuple[httpx.AsyncClient, str]
) -> None:
    browser, token = visitor
    foreign = await browser.post("/api/jobs", content=JOB, headers=page(FOREIGN, "same-site"))
    undeclared = await browser.post("/api/jobs", content=JOB, headers=page(None, "cross-site"))
    # an old browser, or a client that keeps cookies but says nothing of the page
    anonymous = await browser.post("/api/jobs", content=JOB, headers=page(None))
    assert_error(foreign, 403, "forbidden")
    assert_error(undeclared, 403, "forbidden")
    assert_error(anonymous, 403, "forbidden")
    assert await jobs_of(site, token) == []


async def test_own_and_allowed_pages_submit_with_json_only(
    site: Stack, visitor: tuple[httpx.AsyncClient, str]
) -> None:
    browser, token = visitor
    json_type = {"Content-Type": "application/json"}
    own = await browser.post("/api/jobs", content=JOB, headers=page(site.base_url) | json_type)
    same_origin = await browser.post(
        "/api/jobs", content=JOB, headers=page(None, "same-origin") | json_type
    )
    allowed = await browser.post("/api/jobs", content=JOB, headers=page(ALLOWED) | json_type)
    # the same page, but a body a form could send: no preflight would have guarded it
    as_text = await browser.post("/api/jobs", content=JOB, headers=page(site.base_url))
    assert [own.status_code, same_origin.status_code, allowed.status_code] == [202] * 3
    assert_error(as_text, 415, "unsupported_media_type")
    assert len(await jobs_of(site, token)) == 3


async def test_a_foreign_page_cannot_cancel_or_retry(
    site: Stack, visitor: tuple[httpx.AsyncClient, str]
) -> None:
    browser, token = visitor
    own = page(site.base_url, "same-origin")
    json_type = {"Content-Type": "application/json"}
    job_id = (await browser.post("/api/jobs", content=JOB, headers=own | json_type)).json()["id"]
    for action in ("cancel", "retry"):
        answer = await browser.post(f"/api/jobs/{job_id}/{action}", headers=page(FOREIGN))
        assert_error(answer, 403, "forbidden")
    (job,) = await jobs_of(site, token)
    assert job["status"] == "pending"
    cancelled = await browser.post(f"/api/jobs/{job_id}/cancel", headers=own)
    assert cancelled.status_code == 202


async def test_a_foreign_page_cannot_replace_the_session(
    site: Stack, visitor: tuple[httpx.AsyncClient, str]
) -> None:
    browser, token = visitor
    replaced = await browser.post("/api/sessions", headers=page(FOREIGN, "same-site"))
    assert_error(replaced, 403, "forbidden")
    assert "set-cookie" not in replaced.headers
    assert browser.cookies["jobcast_session"] == token
    # nor make one for a visitor who has none (login CSRF)
    async with httpx.AsyncClient(base_url=site.base_url) as fresh:
        assert_error(await fresh.post("/api/sessions", headers=page(FOREIGN)), 403, "forbidden")
        # a client that is no browser (no cookie, no Origin) still gets a session
        assert (await fresh.post("/api/sessions")).status_code == 201


async def test_a_bearer_token_is_not_asked_where_it_comes_from(
    site: Stack, visitor: tuple[httpx.AsyncClient, str]
) -> None:
    _, token = visitor
    async with site.client(token) as client:
        foreign = await client.post("/api/jobs", content=JOB, headers=page(FOREIGN, "cross-site"))
        plain = await client.post("/api/jobs", content=JOB, headers={"Content-Type": "text/plain"})
    assert [foreign.status_code, plain.status_code] == [202, 202]
