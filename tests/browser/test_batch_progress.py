"""The page of a batch in Chromium (``/batches/{id}``): <job-progress batch-id="…"> shows
its jobs by status and its overall progress live from ``WS /ws/batches/{id}`` to the
batch's end, and the table each job as it stands."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, WebSocketRoute, expect

from tests.browser.pages import assert_never_decreases, shot
from tests.support import Stack, eventually

pytestmark = pytest.mark.browser

RECORD = """
window.__rec = {progress: [], done: null};
document.addEventListener("job-progress:batch", (e) => {
  window.__rec.progress.push(e.detail.batch.progress);
});
document.addEventListener("job-progress:done", (e) => { window.__rec.done = e.detail.batch; });
"""


async def test_the_batch_page_follows_a_batch_to_its_end(
    stack: Stack, context: BrowserContext, artifacts: str
) -> None:
    token = await stack.owner()
    jobs = [{"type": "demo", "input": {"duration": d}} for d in (1, 2, 3)]
    jobs.append({"type": "demo", "input": {"duration": 1, "fail_step": "fetch"}})
    async with stack.client(token) as client:
        response = await client.post("/api/jobs/batch", json={"jobs": jobs})
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
    host = urlsplit(stack.base_url).hostname
    await context.add_cookies(
        [{"name": "jobcast_session", "value": token, "domain": host, "path": "/"}]
    )
    await context.add_init_script(RECORD)
    page = await context.new_page()
    await page.goto(f"{stack.base_url}/batches/{batch_id}")
    element = page.locator("job-progress")
    await expect(element).to_contain_text("of 4 jobs done", timeout=15_000)
    await expect(element).to_contain_text("4 of 4 jobs done", timeout=60_000)
    await expect(element).to_contain_text("3 completed · 1 failed")
    rec = await page.evaluate("() => window.__rec")
    assert rec["done"]["finished"] is True
    assert rec["done"]["counts"] == {"completed": 3, "failed": 1}
    assert rec["done"]["progress"] == 100
    assert_never_decreases(rec["progress"])
    assert len(rec["progress"]) > 2  # it moved live, not only at the start and the end
    rows = page.locator("#batch-jobs tr")
    await expect(rows).to_have_count(4)
    statuses = [await row.get_attribute("data-status") for row in await rows.all()]
    assert statuses == ["completed", "completed", "completed", "failed"]
    await expect(rows.nth(3)).to_contain_text("fetch")  # the failed job's error names its step
    links = [await row.locator("a").get_attribute("href") for row in await rows.all()]
    assert links == [f"/jobs/{j['id']}" for j in response.json()["jobs"]]
    await shot(page, artifacts, "batch-page")


async def test_an_event_older_than_the_snapshot_does_not_take_the_batch_back(
    stack: Stack, context: BrowserContext
) -> None:
    """The socket reads its snapshot after subscribing, so an event written just before the
    snapshot can follow it; the page skips it by the job's ``seq`` in the snapshot. Here the
    server's real snapshot of a job part way through is followed by the job's first event,
    which says 0%."""
    token = await stack.owner()
    async with stack.client(token) as client:
        response = await client.post(
            "/api/jobs/batch", json={"jobs": [{"type": "demo", "input": {"duration": 4}}]}
        )
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        job_id = response.json()["jobs"][0]["id"]

        async def part_way() -> bool:
            job = (await client.get(f"/api/jobs/{job_id}")).json()
            return job["status"] == "running" and 0 < job["progress"] < 100

        await eventually(part_way, timeout_s=30, what="the job part way through")
        events = (await client.get(f"/api/jobs/{job_id}/events")).json()["events"]
    stale = next(e for e in events if e.get("status") == "running")
    assert stale.get("progress", 0) == 0, stale

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            ws.send(message)
            if json.loads(message)["type"] == "snapshot":
                ws.send(json.dumps(stale))

        server.on_message(to_page)

    host = urlsplit(stack.base_url).hostname
    await context.add_cookies(
        [{"name": "jobcast_session", "value": token, "domain": host, "path": "/"}]
    )
    await context.add_init_script(RECORD)
    page = await context.new_page()
    await page.route_web_socket("**/ws/batches/*", route)
    await page.goto(f"{stack.base_url}/batches/{batch_id}")
    await expect(page.locator("job-progress")).to_contain_text("1 of 1 jobs done", timeout=30_000)
    rec = await page.evaluate("() => window.__rec")
    assert rec["progress"][0] > 0, rec["progress"]  # the snapshot, part way
    assert_never_decreases(rec["progress"])
    assert rec["done"]["progress"] == 100
