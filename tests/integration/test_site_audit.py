"""``site_audit`` end to end: a real worker crawls a small site served on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jobcast.endpoints import Endpoints, free_port
from tests.conftest import DatabaseFactory
from tests.support import Stack, eventually, launch, submit, watch

SLOW_S = 1.2


def _html(title: str | None, body: str, description: str | None = None) -> str:
    head = f"<title>{title}</title>" if title else ""
    if description:
        head += f'<meta name="description" content="{description}">'
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


def _links(*paths: str) -> str:
    return "".join(f'<a href="{p}">{p}</a>' for p in paths)


# path -> (status, content type, body, extra headers); "{base}" is the site's own URL
PAGES: dict[str, tuple[int, str, str, dict[str, str]]] = {
    "/robots.txt": (
        200,
        "text/plain",
        "User-agent: *\nDisallow: /private/\nSitemap: {base}/sitemap.xml\n",
        {},
    ),
    "/sitemap.xml": (
        200,
        "application/xml",
        (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            "<url><loc>{base}/</loc></url><url><loc>{base}/about</loc></url>"
            "<url><loc>{base}/from-sitemap</loc></url>"
            "<url><loc>https://elsewhere.example/page</loc></url></urlset>"
        ),
        {},
    ),
    "/": (
        200,
        "text/html; charset=utf-8",
        _html(
            "Home",
            "<h1>Welcome</h1><h2>News</h2><h2>Links</h2>"
            + _links(
                "/about",
                "/about#team",
                "/old",
                "/missing",
                "/slow",
                "/private/secret",
                "/deep/1",
                "https://elsewhere.example/",
                "mailto:someone@example.com",
            ),
            description="The home page",
        ),
        {},
    ),
    "/about": (200, "text/html", _html("About us", "<h1>About</h1>" + _links("/")), {}),
    "/old": (301, "text/html", "", {"Location": "/new"}),
    "/new": (200, "text/html", _html("New", _links("/"), description="Moved here"), {}),
    "/missing": (404, "text/html", _html("Not found", "nothing here"), {}),
    "/slow": (200, "text/html", _html("Slow", "", description="Takes its time"), {}),
    "/private/secret": (200, "text/html", _html("Secret", ""), {}),
    "/deep/1": (200, "text/html", _html("Deep 1", _links("/deep/2")), {}),
    "/deep/2": (200, "text/html", _html("Deep 2", _links("/deep/3")), {}),
    "/deep/3": (200, "text/html", _html("Deep 3", _links("/deep/4")), {}),
    "/from-sitemap": (200, "text/html", _html("Listed", "", description="Only in the sitemap"), {}),
    "/data.json": (200, "application/json", '{"not": "html"}', {}),
}


class Site(ThreadingHTTPServer):
    """The audited site: serves PAGES and remembers every path asked for."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requested: list[str] = []
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def paths(self) -> list[str]:
        with self.lock:
            return list(self.requested)


class _Handler(BaseHTTPRequestHandler):
    server: Site

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requested.append(self.path)
        if self.path == "/slow":
            time.sleep(SLOW_S)  # a thread of its own: the other requests go on meanwhile
        status, content_type, body, headers = PAGES.get(
            self.path, (404, "text/html", _html("Not found", ""), {})
        )
        data = body.replace("{base}", self.server.base).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test reads Site.requested instead


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    server = Site()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
async def auditor(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A service that may audit loopback, which a default install refuses."""
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("auditor"),
        JOBCAST_AUDIT_HOSTS="127.0.0.1",
    )
    try:
        yield stack
    finally:
        stack.close()


async def _audit(stack: Stack, **job_input: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run one audit to its end; the job as stored and the events the websocket carried."""
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "site_audit", **job_input)
        seen = await watch(stack, token, job_id, timeout_s=60)
        job = (await client.get(f"/api/jobs/{job_id}")).json()
    return job, seen.events


def _by_url(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {page["url"]: page for page in report["pages"]}


async def test_an_audit_finds_what_a_visitor_would_trip_over(auditor: Stack, site: Site) -> None:
    before = len(site.paths())
    job, events = await _audit(
        auditor, url=f"{site.base}/", max_pages=20, max_depth=2, concurrency=3, timeout_s=5
    )
    requested = site.paths()[before:]
    assert job["status"] == "completed", job["error"]
    report, base = job["result"], site.base
    pages, summary = _by_url(report), report["summary"]

    assert requested[:2] == ["/robots.txt", "/sitemap.xml"]
    crawled = {
        "/",
        "/about",
        "/old",
        "/new",
        "/missing",
        "/slow",
        "/deep/1",
        "/deep/2",
        "/from-sitemap",
    }
    assert set(pages) == {base + p for p in crawled}
    assert sorted(requested[2:]) == sorted(crawled), "each page is fetched exactly once"
    assert summary["pages_crawled"] == len(crawled)

    home = pages[f"{base}/"]
    assert home["status"] == 200 and home["title"] == "Home"
    assert home["description"] == "The home page"
    assert home["h1"] == ["Welcome"] and home["h2"] == ["News", "Links"]
    assert home["links"] == {"internal": 6, "external": 1}
    assert home["size_bytes"] > 0 and home["response_ms"] >= 0 and home["depth"] == 0

    assert report["broken_links"] == [
        {"page": f"{base}/", "url": f"{base}/missing", "status": 404, "error": None}
    ]
    assert home["broken_links"] == [{"url": f"{base}/missing", "status": 404, "error": None}]
    assert summary["broken_links"] == 1

    redirect = {"from": f"{base}/old", "to": f"{base}/new", "status": 301}
    assert report["redirects"] == [redirect] and summary["redirects"] == 1
    assert pages[f"{base}/old"]["redirects"] == [redirect]
    assert pages[f"{base}/new"]["depth"] == 1, "a redirect is not a click deeper"

    assert summary["slow_pages"] == [f"{base}/slow"]
    assert pages[f"{base}/slow"]["response_ms"] >= SLOW_S * 1000 * 0.9
    assert pages[f"{base}/slow"]["slow"] and not home["slow"]
    assert f"{base}/about" in summary["missing_description"]
    assert summary["missing_title"] == []
    assert 0 < summary["score"] < 100

    assert "/private/secret" not in requested and "/deep/3" not in requested
    assert {"url": f"{base}/private/secret", "reason": "robots"} in report["skipped"]
    assert {"url": f"{base}/deep/3", "reason": "depth"} in report["skipped"]
    assert not any("elsewhere.example" in s["url"] for s in report["skipped"])

    steps = [e["step"] for e in events if e["kind"] == "step" and e["state"] == "completed"]
    assert steps == ["robots", "crawl", "analyze", "report"]
    crawled_messages = [
        e["message"] for e in events if e["kind"] == "progress" and e["step"] == "crawl"
    ]
    assert_counted(crawled_messages, len(crawled), 20)
    progress = [e["progress"] for e in events if e["kind"] == "progress"]
    assert progress == sorted(progress)


def assert_counted(messages: list[str], crawled: int, budget: int) -> None:
    """The crawl's messages count up in order to the pages crawled. Reports made within
    the progress window are stored as one, the latest, so some counts may be missing;
    the last is always there."""
    counts = [int(m.removeprefix("Crawled ").split("/")[0]) for m in messages]
    assert messages == [f"Crawled {n}/{budget} pages" for n in counts], messages
    assert counts == sorted(set(counts)) and counts[-1] == crawled, counts


async def test_the_page_budget_bounds_the_crawl(auditor: Stack, site: Site) -> None:
    job, events = await _audit(auditor, url=f"{site.base}/", max_pages=3, concurrency=2)
    report = job["result"]
    assert job["status"] == "completed"
    assert report["summary"]["pages_crawled"] == 3 and len(report["pages"]) == 3
    assert any(s["reason"] == "max_pages" for s in report["skipped"])
    messages = [e["message"] for e in events if e["kind"] == "progress" and e["step"] == "crawl"]
    assert_counted(messages, 3, 3)


async def test_a_start_url_that_answers_404_fails_at_once(auditor: Stack, site: Site) -> None:
    job, _ = await _audit(auditor, url=f"{site.base}/gone")
    assert job["status"] == "failed" and job["attempts"] == 1
    assert job["error"]["category"] == "permanent"
    assert job["error"]["message"] == (
        f"{site.base}/gone answered 404 Not Found: there is no page to audit there"
    )
    assert [s["status"] for s in job["steps"]] == ["completed", "failed", "waiting", "waiting"]


async def test_a_start_url_that_is_not_html_fails_at_once(auditor: Stack, site: Site) -> None:
    job, _ = await _audit(auditor, url=f"{site.base}/data.json")
    assert job["status"] == "failed" and job["attempts"] == 1
    assert job["error"]["category"] == "permanent"
    assert "not an HTML page" in job["error"]["message"]
    assert "application/json" in job["error"]["message"]


async def test_an_unreachable_site_is_retried_as_transient(auditor: Stack) -> None:
    token = await auditor.owner()
    closed = f"http://127.0.0.1:{free_port()}/"
    async with auditor.client(token) as client:
        response = await client.post(
            "/api/jobs",
            json={
                "type": "site_audit",
                "input": {"url": closed, "timeout_s": 2},
                "max_attempts": 2,
            },
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]

        async def ended() -> dict[str, Any] | None:
            job: dict[str, Any] = (await client.get(f"/api/jobs/{job_id}")).json()
            return job if job["status"] in ("completed", "failed") else None

        job = await eventually(ended, timeout_s=30, what="the audit of a closed port to end")
    assert job["status"] == "failed" and job["attempts"] == 2
    assert job["error"]["category"] == "transient"
    assert "could not be reached" in job["error"]["message"]


async def test_a_private_host_is_refused_at_submit(auditor: Stack) -> None:
    token = await auditor.owner()
    async with auditor.client(token) as client:
        answers = [
            await client.post("/api/jobs", json={"type": "site_audit", "input": {"url": u}})
            for u in ("http://10.1.2.3/", "http://localhost:8080/", "http://[::1]/")
        ]
        types = {t["type"]: t for t in (await client.get("/api/job-types")).json()["job_types"]}
    for answer in answers:
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["details"][0]["field"] == "url"
        assert "is not a public address" in error["message"]
    audit = types["site_audit"]
    assert audit["title"] == "Site audit" and audit["concurrency"] == 2
    assert [s["name"] for s in audit["steps"]] == ["robots", "crawl", "analyze", "report"]
