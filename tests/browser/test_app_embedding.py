"""The whole app story in Chromium, across two sites: an app's backend and jobcast.

jobcast runs on ``127.0.0.1:<port>``; the app runs on ``localhost:<another>``, another
site to the browser, so no cookie of jobcast's goes along and only the token counts.
The app is a few lines of Starlette holding an app key: it mints a browser token for
the user who visits (``?user=``; a real app knows its user from its own session) and
renders a page that imports jobcast's ES module from jobcast's origin and shows
``<job-progress>`` and ``<job-toasts>`` with that token. Jobs are submitted the way the
app's backend would, with the app key on behalf of the user.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from playwright.async_api import Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from jobcast.endpoints import Endpoints, free_port
from jobcast.store import NewAppKey, Store
from tests.browser.conftest import NewContext
from tests.browser.pages import DESKTOP, Console, assert_never_decreases, new_page, shot
from tests.conftest import DatabaseFactory
from tests.support import Stack, launch

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop reports</title>
<style>body {{ font: 16px system-ui, sans-serif; margin: 2rem; max-width: 40rem; }}</style>
<script type="module">
  import {{ isFinal }} from "{jobcast}/static/jobcast.mjs";
  window.__rec = {{ progress: [], events: 0, done: null, errors: [], toasts: [], toastErrors: [] }};
  const rec = window.__rec;
  document.addEventListener("job-progress:event", (e) => {{
    rec.events += 1;
    rec.progress.push(e.detail.job.progress);
  }});
  document.addEventListener("job-progress:done", (e) => {{ rec.done = e.detail.job.status; }});
  document.addEventListener("job-progress:error", (e) => {{ rec.errors.push(e.detail); }});
  document.addEventListener("job-toasts:toast", (e) => {{ rec.toasts.push(e.detail); }});
  document.addEventListener("job-toasts:error", (e) => {{ rec.toastErrors.push(e.detail); }});
  // the token given as a property too: it never needs to be in the DOM
  document.querySelector("job-toasts").token = {token_json};
  rec.moduleLoaded = isFinal("completed");
</script></head>
<body>
  <h1>Your report, {user}</h1>
  <job-progress job-id="{job}" server="{jobcast}" token="{token}"></job-progress>
  <job-toasts server="{jobcast}"></job-toasts>
</body></html>
"""


@dataclass
class App:
    """The app's backend: its origin and the app key it holds."""

    url: str
    key: NewAppKey


@pytest.fixture(scope="module")
def app_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def jobcast(
    endpoints: Endpoints,
    new_database: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
    app_port: int,
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("app-embedding"),
        JOBCAST_ALLOWED_ORIGINS=f"http://localhost:{app_port}",
    )
    try:
        yield stack
    finally:
        stack.close()


def backend(jobcast_url: str, key: NewAppKey) -> Starlette:
    """The app: a page for its signed-in user, with a token minted for that user."""

    async def report(request: Request) -> HTMLResponse:
        user = request.query_params["user"]
        ttl_s = float(request.query_params.get("ttl", "600"))
        claims = {"sub": user, "can": ["read"], "exp": int(time.time() + ttl_s)}
        token = jwt.encode(
            claims, key.signing_secret, algorithm="HS256", headers={"kid": key.key.id}
        )
        html = PAGE.format(
            jobcast=jobcast_url,
            job=request.query_params["job"],
            user=user,
            token=token,
            token_json=f'"{token}"',
        )
        return HTMLResponse(html)

    return Starlette(routes=[Route("/report", report)])


@pytest.fixture(scope="module")
async def app(jobcast: Stack, app_port: int) -> AsyncIterator[App]:
    async with Store.open(jobcast.database_url, max_size=1) as store:
        key = await store.create_app_key("shop")
    config = uvicorn.Config(
        backend(jobcast.base_url, key), host="127.0.0.1", port=app_port, log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    deadline = time.monotonic() + 15
    while not server.started:
        assert not serving.done() and time.monotonic() < deadline, "the app did not start"
        await asyncio.sleep(0.05)
    try:
        yield App(url=f"http://localhost:{app_port}", key=key)
    finally:
        server.should_exit = True
        await serving


async def submit_for(jobcast: Stack, key: NewAppKey, user: str, **job_input: Any) -> str:
    """What the app's backend does when its user starts a report: submit with its key."""
    async with httpx.AsyncClient(
        base_url=jobcast.base_url, headers={"Authorization": f"Bearer {key.bearer}"}
    ) as client:
        body = {"type": "demo", "input": job_input, "subject": user, "tags": ["report"]}
        response = await client.post("/api/jobs", json=body)
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id


async def open_report(
    new_context: NewContext, console: Console, app: App, user: str, job: str, ttl_s: float = 600
) -> Page:
    context = await new_context(viewport=DESKTOP)
    page = await new_page(context, console)
    await page.goto(f"{app.url}/report?user={user}&job={job}&ttl={ttl_s}")
    await page.wait_for_function("() => window.__rec && window.__rec.moduleLoaded === true")
    return page


async def toasts_of(page: Page) -> list[str]:
    texts: list[str] = await page.locator("job-toasts .jt-toast").all_inner_texts()
    return texts


async def test_the_app_page_shows_its_users_job_live_and_a_toast_and_nothing_of_another_user(
    jobcast: Stack, app: App, new_context: NewContext, artifacts: str
) -> None:
    console = Console()
    job = await submit_for(jobcast, app.key, "ann", duration=4)
    ann = await open_report(new_context, console, app, "ann", job)
    bob = await open_report(new_context, console, app, "bob", job)  # bob tries ann's job

    # bob's page says clearly that the job is not within its token
    progress_of_bob = bob.locator("job-progress")
    await expect(progress_of_bob).to_contain_text("Job not found.", timeout=15_000)
    await expect(progress_of_bob).to_contain_text("token's scope")
    [refused] = await bob.evaluate("() => window.__rec.errors")
    assert (refused["code"], refused["status"]) == ("not_found", 404)

    # ann sees her job's progress live, then its end, and a toast for it
    progress = ann.locator("job-progress")
    await expect(progress).to_contain_text("Completed", timeout=60_000)
    await expect(ann.locator("job-toasts .jt-toast")).to_contain_text(
        f"demo {job[:8]} finished", timeout=15_000
    )
    rec = await ann.evaluate("() => window.__rec")
    assert rec["done"] == "completed" and rec["errors"] == []
    live = [p for p in rec["progress"] if 0 < p < 100]
    assert live, f"no progress between 0 and 100 was shown live: {rec['progress']}"
    assert_never_decreases(rec["progress"])
    await shot(ann, artifacts, "embedding-app-page")

    # bob's toasts: his own job's, and none of ann's, though his feed was open all along;
    # his element tells starts too (the `started` attribute), ann's only ends
    await bob.evaluate("() => document.querySelector('job-toasts').setAttribute('started', '')")
    own = await submit_for(jobcast, app.key, "bob", duration=0.5)
    await expect(bob.locator("job-toasts .jt-toast")).to_have_count(2, timeout=30_000)
    bob_toasts = await bob.evaluate("() => window.__rec.toasts")
    assert [(t["job_id"], t["title"]) for t in bob_toasts] == [
        (own, f"demo {own[:8]} started"),
        (own, f"demo {own[:8]} finished"),
    ]
    assert [t["job_id"] for t in await ann.evaluate("() => window.__rec.toasts")] == [job]
    assert console.errors == [], console.errors


async def test_an_expired_token_closes_the_socket_and_the_element_says_so(
    jobcast: Stack, app: App, new_context: NewContext, artifacts: str
) -> None:
    console = Console()
    job = await submit_for(jobcast, app.key, "cat", duration=60)
    page = await open_report(new_context, console, app, "cat", job, ttl_s=8)
    progress = page.locator("job-progress")
    await expect(progress).to_contain_text("live", timeout=15_000)  # watching over its socket
    await expect(progress).to_contain_text("Access expired", timeout=30_000)
    await expect(progress).to_contain_text("mint a new one")
    [error] = await page.evaluate("() => window.__rec.errors")
    assert (error["code"], error["status"]) == ("token_expired", 401)
    await expect(page.locator("job-toasts .jt-toast")).to_contain_text("Access expired")
    [feed_error] = await page.evaluate("() => window.__rec.toastErrors")
    assert feed_error["code"] == "token_expired"
    await shot(page, artifacts, "embedding-token-expired")
