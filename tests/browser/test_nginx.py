"""A page of the app, on the app's origin, with jobcast under /jobcast/ behind the nginx
configuration of docs/deploy.md, in Chromium: it makes a session (the cookie), submits a
job and watches it to the end over the cookie websocket. The cookie's requests and
websocket pass the origin check only if nginx hands on the Host with its port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext

from jobcast.endpoints import Endpoints
from tests.chaos import chaos_env
from tests.conftest import DatabaseFactory
from tests.nginx import Nginx
from tests.support import eventually, launch

pytestmark = [pytest.mark.browser, pytest.mark.topology]

PAGE = """<!doctype html>
<html><head><title>app</title><script src="/jobcast/static/jobcast.js"></script></head>
<body>
<job-progress id="progress" server="/jobcast"></job-progress>
<script>
window.addEventListener("load", async () => {
  try {
    const jobs = window.jobcast.client("/jobcast");
    await jobs.ensureSession();
    const created = await jobs.submit("demo", { duration: 1 });
    const progress = document.getElementById("progress");
    progress.addEventListener("job-progress:done", (ev) => {
      window.__done = ev.detail.job.status;
    });
    progress.setAttribute("job-id", created.id);
    window.__job = created.id;
  } catch (err) {
    window.__done = "error: " + err;
  }
});
</script>
</body></html>
"""


@pytest.fixture(scope="module")
async def nginx(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Nginx]:
    stack = await launch(
        await new_database(), endpoints.redis_url, tmp_path_factory.mktemp("nginx"), **chaos_env()
    )
    front: Nginx | None = None
    try:
        second = await stack.add_web()
        front = Nginx([urlsplit(s.base_url).port or 80 for s in (stack, second)])
        front.serve("app.html", PAGE)
        front.start()
        yield front
    finally:
        if front is not None:
            front.stop()
        stack.close()


async def test_a_page_on_the_apps_origin_runs_a_job_through_nginx(
    nginx: Nginx, context: BrowserContext
) -> None:
    page = await context.new_page()
    opened: list[str] = []
    page.on("websocket", lambda ws: opened.append(ws.url))
    await page.goto(f"{nginx.url}/app.html")
    await page.wait_for_function("window.__done !== undefined", timeout=30_000)
    assert await page.evaluate("window.__done") == "completed"
    job_id = await page.evaluate("window.__job")
    assert any(f"/jobcast/ws/jobs/{job_id}" in url for url in opened), opened
    await page.close()

    # the element watched over the websocket, upgraded through nginx with the cookie; nginx
    # writes an upgraded connection's line only when the connection ends
    async def upgraded() -> list[str]:
        lines = nginx.log().splitlines()
        return [line for line in lines if f"/jobcast/ws/jobs/{job_id}" in line]

    sockets = await eventually(upgraded, what="the websocket's line in nginx's log")
    assert all('" 101 ' in line for line in sockets), nginx.log()[-2000:]
