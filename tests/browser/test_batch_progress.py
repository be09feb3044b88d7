"""<job-progress batch-id="…"> in Chromium: a batch's jobs by status and its overall
progress, live from ``WS /ws/batches/{id}``, to the batch's end."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.pages import assert_never_decreases
from tests.support import Stack

pytestmark = pytest.mark.browser

RECORD = """
window.__rec = {progress: [], done: null};
document.addEventListener("job-progress:batch", (e) => {
  window.__rec.progress.push(e.detail.batch.progress);
});
document.addEventListener("job-progress:done", (e) => { window.__rec.done = e.detail.batch; });
"""


async def test_the_element_follows_a_batch_to_its_end(
    stack: Stack, context: BrowserContext
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
    await page.goto(f"{stack.base_url}/static/embed-demo.html?batch={batch_id}")
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
