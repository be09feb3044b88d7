"""The operator's view, and a web process restart under a watching page: a stack of their own."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from playwright.async_api import BrowserContext, Route, expect

from jobcast.endpoints import Endpoints
from tests.browser.conftest import NewContext
from tests.browser.pages import (
    DESKTOP,
    RECORDER,
    Console,
    assert_never_decreases,
    new_page,
    open_home,
    recorded,
    shot,
    start_demo,
)
from tests.browser.test_language import ENGLISH_LEFT, FUNCTION_WORDS
from tests.support import Stack, launch, submit

pytestmark = pytest.mark.browser

ADMIN_TOKEN = "operator-token-for-the-browser-tests"

# What is wider than its box on the page: the page itself, or a table in its scroll box.
OVERFLOW = """() => {
  const wide = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth) wide.push(["page", root.scrollWidth, root.clientWidth]);
  for (const box of document.querySelectorAll(".table-wrap")) {
    if (box.offsetParent && box.scrollWidth > box.clientWidth + 1) {
      wide.push([box.querySelector("table").id, box.scrollWidth, box.clientWidth]);
    }
  }
  return wide;
}"""


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
    # the type's title, not its name
    await expect(row.locator("td").nth(1)).to_have_text("Demo")
    # refreshed every 2 s: the progress moves on
    bar = row.get_by_role("progressbar")
    first = int(await bar.get_attribute("aria-valuenow") or 0)
    await expect(bar).not_to_have_attribute("aria-valuenow", str(first), timeout=8_000)
    failure = page.locator(f"#failures li[data-job-id='{failed}']")
    await expect(failure).to_contain_text("the fetch data step failed, as asked", timeout=10_000)
    await expect(failure).to_contain_text("permanent")
    await expect(page.locator("#types-body tr[data-type=demo]")).to_contain_text("50%")
    await expect(page.locator("#running-count")).to_have_text("1")
    # the running job is not on the queue any more: the depth agrees with the pending count
    await expect(page.locator("#queue-depth")).to_have_text("0")
    await expect(page.locator("#pending-count")).to_have_text(re.compile(r"^0 pending"))
    await shot(page, artifacts, "admin-dashboard")
    # on a phone every table fits the screen: nothing to scroll sideways
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(page.locator("#running-table")).to_be_visible()
    overflow = await page.evaluate(OVERFLOW)
    await shot(page, artifacts, "admin-phone", full_page=True)
    await page.set_viewport_size({"width": 1100, "height": 800})
    assert overflow == [], overflow
    # a job id links to the job's page in the console
    await row.get_by_role("link", name=running[:8]).click()
    await expect(page.locator("#job-panel")).to_be_visible()
    await expect(page.locator("#job-panel-title")).to_have_text(f"Demo · {running} · running")
    await page.locator("#job-panel-close").click()
    await failure.get_by_role("link", name=failed[:8]).click()
    await expect(page.locator("#job-panel-title")).to_have_text(f"Demo · {failed} · failed")
    await page.locator("#job-panel-close").click()

    # the token stays for the tab: a reload goes straight to the dashboard, which warns
    # of stuck jobs and long waits (numbers a healthy test stack never shows, so edited in)
    async def trouble(route: Route) -> None:
        response = await route.fetch()
        stats = await response.json()
        stats.update(stuck_running=2, oldest_pending_s=95.0)
        stats["by_status"]["pending"] = 3
        await route.fulfill(response=response, json=stats)

    await page.route("**/api/admin/stats?*", trouble)
    await page.reload()
    await expect(page.locator("#dashboard")).to_be_visible()
    warnings = page.locator("#warnings li")
    await expect(warnings.first).to_contain_text("2 running jobs have stopped reporting")
    await expect(warnings.nth(1)).to_contain_text("The oldest pending job has waited 2 min")
    await expect(page.locator("#oldest-pending")).to_have_text("2 min")
    await shot(page, artifacts, "admin-warnings")
    # a poll in flight meanwhile is answered as it comes, not fulfilled after the route went
    await page.unroute_all(behavior="wait")
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


# What the jobs and the server wrote (messages, errors, ids, inputs, tokens) is theirs.
OPERATOR_TEXT = ".failure-message, .mono, code, pre, .timeline, .uplot, #search-body td:last-child"


async def test_a_german_browser_sees_the_console_in_german(
    ops_stack: Stack, new_context: NewContext, artifacts: str
) -> None:
    token = await ops_stack.owner()
    async with ops_stack.client(token) as client:
        running = await submit(client, "demo", duration=30)
        await submit(client, "demo", duration=0.2, fail_step="fetch")
    console = Console()
    context = await new_context(viewport=DESKTOP, locale="de-DE")
    page = await new_page(context, console)

    async def english_left() -> list[str]:
        seen = await page.evaluate(ENGLISH_LEFT, [OPERATOR_TEXT, FUNCTION_WORDS])
        text = seen["text"]
        return [
            f"{w!r} in {text[max(0, text.lower().find(w) - 60) :][:120]!r}" for w in seen["found"]
        ]

    await page.goto(ops_stack.base_url + "/admin")
    await expect(page.locator("html")).to_have_attribute("lang", "de")
    await expect(page.locator("#login-title")).to_have_text("Anmeldung für den Betrieb")
    assert await english_left() == []
    await page.get_by_label("Admin-Token").fill("not-a-token")
    await page.get_by_role("button", name="Übersicht zeigen").click()
    await expect(page.locator("#login-error")).to_contain_text("nicht angenommen")
    assert await english_left() == []

    await page.get_by_label("Admin-Token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Übersicht zeigen").click()
    row = page.locator(f"#running-body tr[data-job-id='{running}']")
    await expect(row).to_contain_text("Daten holen", timeout=10_000)
    await expect(page.locator("#failures li").first).to_contain_text("dauerhaft")
    await expect(page.locator("#refresh-state")).to_contain_text("Aktualisiert")
    await expect(page.locator("#feed-state")).to_have_text("live")
    await expect(page.locator("#search-table")).to_have_attribute("data-count", re.compile(r"\d"))
    assert await english_left() == []
    # the charts' time axes are written the German way ("04:15", not "4:15am"), the date
    # ("2. Dez.") under the first tick and where a day begins
    axis = page.locator("#chart-finished")
    await expect(axis).to_have_attribute("data-ticks", re.compile(r"\d"))
    ticks = (await axis.get_attribute("data-ticks") or "").split(" | ")
    german = re.compile(r"^\d{2}:\d{2}(\n\d{1,2}\. [^\W\d]+\.?)?$")
    assert ticks and all(german.match(tick) for tick in ticks), ticks
    assert "\n" in ticks[0], ticks
    await shot(page, artifacts, "admin-german")

    # a job's page in the console
    await row.get_by_role("link", name=running[:8]).click()
    await expect(page.locator("#job-panel-title")).to_have_text(f"Demo · {running} · läuft")
    await expect(page.locator("#job-panel")).to_contain_text("Verlauf")
    assert await english_left() == []
    await page.locator("#job-panel-close").click()
    async with ops_stack.client(token) as client:
        assert (await client.post(f"/api/jobs/{running}/cancel")).status_code == 202
    assert console.errors == []
