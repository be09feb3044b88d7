"""The operator console in Chromium: charts from real jobs, a filter the URL keeps, a bulk
retry of exactly the failed jobs of one type, pause and resume, the read-only token."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect

from jobcast.endpoints import Endpoints
from jobcast.settings import ROOT
from tests.browser.pages import Console, new_page
from tests.integration.test_queue_features import Receiver
from tests.support import Stack, eventually, launch, submit

pytestmark = pytest.mark.browser

ADMIN = "console-admin-" + "c" * 30
OPERATOR = "console-operator-" + "d" * 30
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="module")
async def console_stack(
    endpoints: Endpoints,
    new_database: Callable[[], Awaitable[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    running = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("console-stack"),
        JOBCAST_ADMIN_TOKEN=ADMIN,
        JOBCAST_OPERATOR_TOKEN=OPERATOR,
        JOBCAST_JOB_MODULES="tests.durable",
        JOBCAST_WEBHOOK_HOSTS="127.0.0.1",
        JOBCAST_WEBHOOK_RETRY_BASE_S="0.3",
    )
    try:
        yield running
    finally:
        running.close()


async def _finished(client: httpx.AsyncClient, ids: list[str]) -> bool:
    for job_id in ids:
        status = (await client.get(f"/api/jobs/{job_id}")).json()["status"]
        if status not in ("completed", "failed", "cancelled"):
            return False
    return True


async def _tagged(client: httpx.AsyncClient, tag: str, **job_input: object) -> str:
    job_type = "demo" if job_input else "noop"
    body = {"type": job_type, "input": job_input, "tags": [tag]}
    response = await client.post("/api/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def _sign_in(page: Page, base_url: str, token: str, path: str = "/admin") -> None:
    await page.goto(base_url + path)
    await page.get_by_label("Admin token").fill(token)
    await page.get_by_role("button", name="Show dashboard").click()
    await expect(page.locator("#dashboard")).to_be_visible()


async def test_the_console_charts_filters_retries_and_pauses(
    console_stack: Stack, context: BrowserContext
) -> None:
    owner = await console_stack.owner()
    async with console_stack.client(owner) as mine:
        failed = [
            await _tagged(mine, "nightly", duration=0.05, fail_step="fetch") for _ in range(3)
        ]
        fine = [await submit(mine, "demo", duration=0.05) for _ in range(3)]
        others = [await submit(mine, "noop") for _ in range(3)] + [await _tagged(mine, "other")]
        await eventually(lambda: _finished(mine, failed + fine + others), what="jobs finishing")

    console = Console()
    page = await new_page(context, console)
    await _sign_in(page, console_stack.base_url, ADMIN)
    await expect(page.locator("html")).to_have_attribute("data-feed", "live", timeout=10_000)
    # the charts draw from the jobs above: uPlot's canvases, with points
    finished_chart = page.locator("#chart-finished canvas")
    await expect(finished_chart).to_have_count(1, timeout=10_000)
    assert int(await page.locator("#chart-finished").get_attribute("data-points") or 0) >= 1
    # demo fails half its jobs here: over the 10 % threshold, marked with since when
    demo_queue = page.locator("#queue-list li[data-type=demo]")
    await expect(demo_queue.locator(".over-threshold")).to_contain_text("since")
    await expect(page.locator("#queue-list li[data-type=noop] .over-threshold")).to_have_count(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.locator("#charts").screenshot(path=str(SCREENSHOTS / "admin-charts.png"))

    # a filter by tag: the URL holds it, and opening that URL shows the same jobs
    await page.locator("#filter-form [name=tag]").fill("nightly")
    await page.get_by_role("button", name="Search", exact=True).click()
    await expect(page).to_have_url(re.compile(r"[?&]tag=nightly"))
    rows = page.locator("#search-body tr")
    await expect(rows).to_have_count(len(failed))
    shown = {await r.get_attribute("data-job-id") for r in await rows.all()}
    assert shown == set(failed)
    shared = page.url
    other = await new_page(context, Console())
    await other.goto(shared)  # the token is per tab: this tab signs in, then finds the same
    await other.get_by_label("Admin token").fill(ADMIN)
    await other.get_by_role("button", name="Show dashboard").click()
    await expect(other.locator("#search-body tr")).to_have_count(len(failed))
    await expect(other.locator("#filter-form [name=tag]")).to_have_value("nightly")
    await other.close()

    # the failed jobs of one type
    await page.locator("#filter-form [name=tag]").fill("")
    await page.locator("#filter-form [name=type]").fill("demo")
    await page.locator("#filter-form [name=status]").select_option("failed")
    await page.get_by_role("button", name="Search", exact=True).click()
    await expect(page).to_have_url(re.compile(r"[?&]type=demo&status=failed"))
    await expect(rows).to_have_count(len(failed))

    # bulk retry of the failed demo jobs: the confirm names the count; progress is live
    messages: list[str] = []

    async def accept(dialog: object) -> None:
        messages.append(dialog.message)  # type: ignore[attr-defined]
        await dialog.accept()  # type: ignore[attr-defined]

    page.on("dialog", accept)
    await page.get_by_role("button", name="Retry matching…").click()
    await expect(page.locator("#action-progress")).to_contain_text("3 of 3", timeout=15_000)
    assert messages and messages[0].startswith("Retry 3 jobs")
    async with console_stack.client(ADMIN) as admin:
        jobs = (await admin.get("/api/admin/jobs", params={"limit": 200})).json()["jobs"]
    assert sorted(j["retry_of"] for j in jobs if j["retry_of"]) == sorted(failed)
    await page.screenshot(path=str(SCREENSHOTS / "admin-console.png"), full_page=True)

    # the job page: every event, attempt by attempt
    await page.locator(f"#search-body tr[data-job-id='{failed[0]}'] a").click()
    await expect(page.locator("#job-panel")).to_be_visible()
    await expect(page.locator("#job-panel .timeline")).to_contain_text("Attempt 1")
    await expect(page.locator("#job-panel-body")).to_contain_text("fetch")
    await page.locator("#job-panel").screenshot(path=str(SCREENSHOTS / "admin-job.png"))
    await page.get_by_role("button", name="Close").click()

    # pause stops the type; resume starts it again
    noop = page.locator("#queue-list li[data-type=noop]")
    await noop.get_by_role("button", name="Pause").click()
    await expect(noop.get_by_role("button", name="Resume")).to_be_visible()
    async with console_stack.client(owner) as mine:
        held = await submit(mine, "noop")
        probe = await submit(mine, "demo", duration=0.05)
        await eventually(lambda: _finished(mine, [probe]))
        assert (await mine.get(f"/api/jobs/{held}")).json()["status"] == "pending"
        await noop.get_by_role("button", name="Resume").click()
        await eventually(lambda: _finished(mine, [held]), what="the paused job after resume")
    assert not console.errors, console.errors


async def test_the_read_only_token_sees_but_cannot_act(
    console_stack: Stack, context: BrowserContext
) -> None:
    owner = await console_stack.owner()
    async with console_stack.client(owner) as mine:
        job_id = await submit(mine, "noop")
        await eventually(lambda: _finished(mine, [job_id]))
    page = await new_page(context, Console())
    await _sign_in(page, console_stack.base_url, OPERATOR, "/admin?type=noop")
    await expect(page.locator("html")).to_have_attribute("data-role", "operator")
    await expect(page.locator(f"#search-body tr[data-job-id='{job_id}']")).to_be_visible()
    for name in ("Retry matching…", "Cancel matching…", "Delete matching…", "Pause"):
        await expect(page.get_by_role("button", name=name)).to_have_count(0)
    # and the API refuses it whatever the page shows
    status = await page.evaluate(
        """async (token) => (await fetch('/api/admin/types/noop/pause', {method: 'POST',
        headers: {Authorization: 'Bearer ' + token}, credentials: 'omit'})).status""",
        OPERATOR,
    )
    assert status == 403
    assert Path(SCREENSHOTS).exists()


async def test_the_job_page_names_each_attempts_worker_its_checkpoints_and_webhook_tries(
    console_stack: Stack, context: BrowserContext, tmp_path: Path
) -> None:
    with Receiver() as receiver:
        receiver.answers = [500]  # the first try fails, the second is delivered
        owner = await console_stack.owner()
        async with console_stack.client(owner) as mine:
            response = await mine.post(
                "/api/jobs",
                json={
                    "type": "five_steps",
                    "input": {"log_path": str(tmp_path / "ran.log"), "flaky_in": "three"},
                    "callback_url": receiver.url,
                },
            )
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]

            async def delivered() -> bool:
                webhook = (await mine.get(f"/api/jobs/{job_id}")).json()["webhook"]
                return (
                    bool(webhook["deliveries"])
                    and webhook["deliveries"][-1]["status"] == "delivered"
                )

            await eventually(delivered, timeout_s=60, what="the job done, its webhook delivered")
    worker = f"{socket.gethostname()}:{console_stack.procs['worker-0'].pid}"

    console = Console()
    page = await new_page(context, console)
    await _sign_in(page, console_stack.base_url, ADMIN, f"/admin#job={job_id}")
    panel = page.locator("#job-panel")
    await expect(panel).to_be_visible()
    heads = panel.locator(".timeline-attempt")
    await expect(heads.filter(has_text="Attempt 1")).to_contain_text(f"ran on {worker}")
    await expect(heads.filter(has_text="Attempt 2")).to_contain_text(f"ran on {worker}")
    checkpoints = panel.locator("#job-checkpoints tbody tr")
    await expect(checkpoints).to_have_count(5)
    await expect(checkpoints.nth(2)).to_contain_text("Three (three)")
    # step three was started by both attempts, one by the first only
    await expect(checkpoints.nth(2).locator("td").nth(4)).to_have_text("2")
    await expect(checkpoints.nth(0).locator("td").nth(4)).to_have_text("1")
    tries = panel.locator("#job-deliveries tbody tr")
    await expect(tries).to_have_count(2)
    await expect(tries.nth(0)).to_contain_text("retrying")
    await expect(tries.nth(0).locator("td").nth(3)).to_have_text("500")
    assert (await tries.nth(0).locator("td").nth(5).inner_text()) != "—"  # the next try
    await expect(tries.nth(1)).to_contain_text("delivered")
    await expect(tries.nth(1).locator("td").nth(5)).to_have_text("—")
    await expect(panel.locator(".timeline")).to_contain_text("three failed")
    await page.set_viewport_size({"width": 1100, "height": 2400})  # the whole panel at once
    await panel.screenshot(path=str(SCREENSHOTS / "admin-job-history.png"))
    assert not console.errors, console.errors
