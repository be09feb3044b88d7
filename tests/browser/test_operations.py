"""The operator's view, and a web process restart under a watching page: a stack of their own."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from playwright.async_api import BrowserContext, Route, expect

from jobcast.endpoints import Endpoints
from tests.browser.pages import (
    RECORDER,
    Console,
    assert_never_decreases,
    new_page,
    open_home,
    recorded,
    shot,
    start_demo,
)
from tests.support import Stack, launch, submit

pytestmark = pytest.mark.browser

ADMIN_TOKEN = "operator-token-for-the-browser-tests"


@pytest.fixture(scope="module")
async def ops_stack(
    endpoints: Endpoints,
    new_database: Callable[[], Awaitable[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    running = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("ops-stack"),
        JOBCAST_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    try:
        yield running
    finally:
        running.close()


async def test_the_admin_dashboard_shows_running_jobs_and_failures(
    ops_stack: Stack, context: BrowserContext, artifacts: str
) -> None:
    token = await ops_stack.owner()
    async with ops_stack.client(token) as client:
        running = await submit(client, "demo", duration=30)
        failed = await submit(client, "demo", duration=0.2, fail_step="fetch")
        await submit(client, "demo", duration=0.2)

    console = Console()
    page = await new_page(context, console)
    await page.goto(ops_stack.base_url + "/admin")
    token_field = page.get_by_label("Admin token")

    # a visitor's token is not an admin token
    await token_field.fill(token)
    await page.get_by_role("button", name="Show dashboard").click()
    await expect(page.locator("#login-error")).to_contain_text("not the admin token")
    await expect(page.locator("#dashboard")).to_be_hidden()
    await token_field.fill("not-a-token")
    await page.get_by_role("button", name="Show dashboard").click()
    await expect(page.locator("#login-error")).to_contain_text("not accepted")

    await token_field.fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Show dashboard").click()
    await expect(page.locator("#dashboard")).to_be_visible()
    row = page.locator(f"#running-body tr[data-job-id='{running}']")
    await expect(row).to_be_visible(timeout=10_000)
    await expect(row).to_contain_text("demo")
    # refreshed every 2 s: the progress moves on
    bar = row.get_by_role("progressbar")
    first = int(await bar.get_attribute("aria-valuenow") or 0)
    await expect(bar).not_to_have_attribute("aria-valuenow", str(first), timeout=8_000)
    failure = page.locator(f"#failures li[data-job-id='{failed}']")
    await expect(failure).to_contain_text("the fetch data step failed, as asked", timeout=10_000)
    await expect(failure).to_contain_text("permanent")
    await expect(page.locator("#types-body tr[data-type=demo]")).to_contain_text("50%")
    await expect(page.locator("#running-count")).to_have_text("1")
    await expect(page.locator("#queue-depth")).to_have_text(re.compile(r"^\d+$"))
    await shot(page, artifacts, "admin-dashboard")

    # the token stays for the tab: a reload goes straight to the dashboard, which warns
    # of stuck jobs and long waits (numbers a healthy test stack never shows, so edited in)
    async def trouble(route: Route) -> None:
        response = await route.fetch()
        stats = await response.json()
        stats.update(stuck_running=2, oldest_pending_s=95.0)
        stats["by_status"]["pending"] = 3
        await route.fulfill(response=response, json=stats)

    await page.route("**/api/admin/stats", trouble)
    await page.reload()
    await expect(page.locator("#dashboard")).to_be_visible()
    warnings = page.locator("#warnings li")
    await expect(warnings.first).to_contain_text("2 running jobs have stopped reporting")
    await expect(warnings.nth(1)).to_contain_text("The oldest pending job has waited 2 min")
    await expect(page.locator("#oldest-pending")).to_have_text("2 min")
    await shot(page, artifacts, "admin-warnings")
    await page.unroute("**/api/admin/stats")
    await page.get_by_role("button", name="Forget token").click()
    await expect(page.locator("#login")).to_be_visible()

    async with ops_stack.client(token) as client:
        assert (await client.post(f"/api/jobs/{running}/cancel")).status_code == 202
    assert console.errors == []


async def test_a_restart_of_the_web_process_does_not_freeze_the_page(
    ops_stack: Stack, context: BrowserContext
) -> None:
    console = Console()
    await context.add_init_script(RECORDER)
    page = await new_page(context, console)
    await open_home(page, ops_stack.base_url)
    await start_demo(page, 8)
    bar = page.get_by_role("progressbar")
    await expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-3]\d$"), timeout=10_000)

    ops_stack.stop("web")
    # the page says it lost the connection, and keeps trying
    await expect(page.locator("#conn-label")).to_have_text(
        re.compile("reconnecting|polling"), timeout=10_000
    )
    ops_stack.start("web")
    await ops_stack.wait_ready()

    # the worker went on meanwhile: the page catches up and sees the end
    await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=40_000)
    await expect(page.locator("#job-status")).to_have_text("completed")
    assert_never_decreases((await recorded(page))["progress"])
    assert console.errors == []
