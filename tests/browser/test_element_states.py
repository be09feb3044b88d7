"""<job-progress> in Chromium when it cannot follow the job: every failure is a clear state
and a ``job-progress:error`` event saying what to fix, never "Connecting…" forever; it makes
no session unless it has ``create-session``; ``job-progress:done`` says whether the job had
already ended when the page opened."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, Page, Route

from jobcast.endpoints import free_port
from tests.support import Stack, eventually

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html><head><title>app</title>
<script src="{server}/static/jobcast.js"></script>
<script>
window.__events = [];
for (const name of ["job-progress:error", "job-progress:done"]) {{
  document.addEventListener(name, (e) => window.__events.push({{name, detail: e.detail}}));
}}
</script></head>
<body><job-progress job-id="{job_id}" {server_attr} {attrs}></job-progress></body></html>
"""

COOKIE = "jobcast_session"


def html(job_id: str, *, server: str = "", attrs: str = "") -> str:
    server_attr = f'server="{server}"' if server else ""
    return PAGE.format(server=server, job_id=job_id, server_attr=server_attr, attrs=attrs)


async def open_page(context: BrowserContext, url: str, body: str) -> Page:
    """A page of the app at ``url`` (served by the test), with ``body`` as its HTML."""
    page = await context.new_page()

    async def serve(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body=body)

    await page.route(url, serve)
    await page.goto(url)
    return page


async def first_event(page: Page) -> dict[str, Any]:
    async def seen() -> dict[str, Any] | None:
        events = await page.evaluate("window.__events")
        return events[0] if events else None

    return await eventually(seen, timeout_s=15, what="a job-progress event")


async def shown(page: Page) -> str:
    text = await page.evaluate(
        "document.querySelector('job-progress').shadowRoot.querySelector('.jp').innerText"
    )
    return str(text)


async def session(stack: Stack) -> str:
    async with stack.client() as client:
        return str((await client.post("/api/sessions")).json()["token"])


async def test_no_credential_is_an_error_and_no_session_is_made(
    stack: Stack, context: BrowserContext
) -> None:
    page = await open_page(context, f"{stack.base_url}/app", html(str(uuid.uuid4())))
    event = await first_event(page)
    assert event["name"] == "job-progress:error"
    assert event["detail"]["code"] == "no_credential"
    assert "create-session" in event["detail"]["message"]
    assert "Not signed in to jobcast" in await shown(page)
    assert "Connecting" not in await shown(page)
    assert [c for c in await context.cookies(stack.base_url) if c["name"] == COOKIE] == []


async def test_create_session_makes_one_and_an_unknown_job_is_not_found(
    stack: Stack, context: BrowserContext
) -> None:
    page = await open_page(
        context, f"{stack.base_url}/app", html(str(uuid.uuid4()), attrs="create-session")
    )
    event = await first_event(page)
    assert (event["name"], event["detail"]["code"], event["detail"]["status"]) == (
        "job-progress:error",
        "not_found",
        404,
    )
    assert "Job not found" in await shown(page)
    assert [c["name"] for c in await context.cookies(stack.base_url)] == [COOKIE]


async def test_a_refused_origin_is_an_error_naming_it(
    stack: Stack, context: BrowserContext, app_server: AppServer
) -> None:
    app_server.html = html(str(uuid.uuid4()), server=stack.base_url).encode()
    page = await context.new_page()
    await page.goto(f"{app_server.origin}/app")
    event = await first_event(page)
    assert event["name"] == "job-progress:error"
    assert event["detail"]["code"] == "unreachable_or_refused"
    assert f"Add {app_server.origin} to JOBCAST_ALLOWED_ORIGINS" in event["detail"]["message"]
    assert "Cannot reach jobcast" in await shown(page)


async def test_done_says_whether_the_job_had_already_ended(
    stack: Stack, context: BrowserContext
) -> None:
    token = await session(stack)
    host = urlsplit(stack.base_url).hostname
    await context.add_cookies([{"name": COOKIE, "value": token, "domain": host, "path": "/"}])
    async with stack.client(token) as client:
        ended = (await client.post("/api/jobs", json={"type": "noop", "input": {}})).json()["id"]

        async def completed() -> bool:
            return (await client.get(f"/api/jobs/{ended}")).json()["status"] == "completed"

        await eventually(completed, what="the noop job to complete")
        page = await open_page(context, f"{stack.base_url}/app", html(ended))
        event = await first_event(page)
        assert (event["name"], event["detail"]["already_ended"]) == ("job-progress:done", True)

        body = {"type": "demo", "input": {"duration": 1.5}}
        running = (await client.post("/api/jobs", json=body)).json()["id"]
        page = await open_page(context, f"{stack.base_url}/app", html(running))
        event = await first_event(page)
        assert (event["name"], event["detail"]["already_ended"]) == ("job-progress:done", False)
        assert event["detail"]["job"]["status"] == "completed"


class AppServer:
    """Another origin (a port of its own) that jobcast does not allow, serving one page: a
    real loopback server, as Chromium refuses a routed page access to loopback addresses."""

    def __init__(self) -> None:
        self.html = b""
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(app.html)))
                self.end_headers()
                self.wfile.write(app.html)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def app_server() -> Iterator[AppServer]:
    app = AppServer()
    thread = threading.Thread(target=app.server.serve_forever, daemon=True)
    thread.start()
    yield app
    app.server.shutdown()
    app.server.server_close()
