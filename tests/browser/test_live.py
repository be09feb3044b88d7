"""Across tabs and connections: toasts, My jobs, a hidden tab, dropped sockets, <job-progress>."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, Page, WebSocketRoute, expect

from tests.browser.conftest import NewContext
from tests.browser.pages import (
    FAKE_NOTIFICATIONS,
    HIDE_TAB,
    RECORDER,
    SHOW_TAB,
    SOCKET_TAP,
    Console,
    assert_never_decreases,
    new_page,
    open_home,
    recorded,
    shot,
    start_demo,
)
from tests.support import Stack, submit

pytestmark = pytest.mark.browser


async def test_two_tabs_of_one_visitor_both_get_the_toast(
    stack: Stack, context: BrowserContext
) -> None:
    console = Console()
    first = await new_page(context, console)
    await open_home(first, stack.base_url)
    second = await new_page(context, console)
    await open_home(second, stack.base_url)

    job_id = await start_demo(first, 2)
    # the other tab learns of the job from the owner feed: it shows up in My jobs, then ends
    row = second.locator(f"#job-list li[data-job-id='{job_id}']")
    await expect(row).to_be_visible(timeout=10_000)
    # the other tab is told which job ended and what came of it
    toast = second.locator("[aria-live] .toast")
    await expect(toast).to_contain_text(f"Demo {job_id[:8]} finished", timeout=20_000)
    await expect(toast).to_contain_text("Demo finished its 4 steps")
    await expect(toast.get_by_role("link", name="View job")).to_have_attribute(
        "href", f"/jobs/{job_id}"
    )
    await expect(row).to_have_attribute("data-status", "completed")
    await expect(row).to_contain_text("100%")
    await expect(first.locator("#job-status")).to_have_text("completed")
    # one toast per job, however many channels told the tab; none where the job is on screen
    await expect(second.locator("[aria-live] .toast")).to_have_count(1)
    await expect(first.locator("[aria-live] .toast")).to_have_count(0)

    # the toast's link opens the job in the other tab
    await second.locator("[aria-live] .toast").get_by_role("link", name="View job").click()
    await expect(second).to_have_url(f"{stack.base_url}/jobs/{job_id}")
    await expect(second.locator("#job-id")).to_have_text(job_id)
    assert console.errors == []


async def test_my_jobs_lists_the_visitors_jobs_live(
    stack: Stack, context: BrowserContext, artifacts: str
) -> None:
    console = Console()
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    await expect(page.locator("#jobs-empty")).to_be_visible()

    done = await start_demo(page, 0.5)
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)
    failed = await start_demo(page, 0.5, fail_step="fetch")
    await expect(page.locator("#job-status")).to_have_text("failed", timeout=15_000)
    running = await start_demo(page, 30)

    rows = page.locator("#job-list li")
    await expect(rows).to_have_count(3)
    # newest first
    assert [await r.get_attribute("data-job-id") for r in await rows.all()] == [
        running,
        failed,
        done,
    ]
    running_row = page.locator(f"#job-list li[data-job-id='{running}']")
    await expect(running_row).to_have_attribute("data-status", "running", timeout=10_000)
    await expect(running_row.locator(".job-row-pct")).not_to_have_text("0%", timeout=10_000)
    await expect(running_row.locator(".job-row-link")).to_have_attribute("aria-current", "page")
    await expect(page.locator(f"#job-list li[data-job-id='{failed}']")).to_have_attribute(
        "data-status", "failed"
    )
    await expect(rows.first.locator(".job-row-age")).to_have_text(
        re.compile(r"(just now|\d+ s ago)")
    )
    await shot(page, artifacts, "my-jobs", full_page=True)

    # a row opens its job in place
    await page.locator(f"#job-list li[data-job-id='{done}'] a").click()
    await expect(page).to_have_url(f"{stack.base_url}/jobs/{done}")
    await expect(page.locator("#job-status")).to_have_text("completed")

    # a job started elsewhere (another tab, the API) appears without a reload
    elsewhere = await submit_as_visitor(page)
    await expect(page.locator(f"#job-list li[data-job-id='{elsewhere}']")).to_have_attribute(
        "data-status", "completed", timeout=15_000
    )

    # cancelled from its own page, the row follows
    await page.goto(f"{stack.base_url}/jobs/{running}")
    await page.locator("#job-view").get_by_role("button", name="Cancel job").click()
    await page.locator("#cancel-dialog").get_by_role("button", name="Cancel job").click()
    await expect(page.locator(f"#job-list li[data-job-id='{running}']")).to_have_attribute(
        "data-status", "cancelled", timeout=10_000
    )
    assert console.errors == []


async def test_a_hidden_tab_shows_progress_in_its_title_and_notifies_the_end(
    stack: Stack, context: BrowserContext
) -> None:
    console = Console()
    await context.add_init_script(FAKE_NOTIFICATIONS)
    page = await new_page(context, console)
    await open_home(page, stack.base_url)

    enable = page.get_by_role("button", name="Enable notifications")
    await enable.click()
    await expect(enable).to_be_hidden()

    await start_demo(page, 4)
    await expect(page.get_by_role("progressbar")).to_have_attribute(
        "aria-valuenow", re.compile(r"^[1-9]\d?$"), timeout=10_000
    )
    await page.evaluate(HIDE_TAB)
    await expect(page).to_have_title(re.compile(r"^Demo · \d{1,2}% · jobcast$"))
    await expect(page).to_have_title("Demo · done · jobcast", timeout=20_000)
    await page.wait_for_function("() => window.__notes.length > 0")
    notes = await page.evaluate("() => window.__notes")
    assert len(notes) == 1 and re.fullmatch(r"Demo [0-9a-f]{8} finished", notes[0]["title"]), notes
    await page.evaluate(SHOW_TAB)
    await expect(page).to_have_title("Demo · done · jobcast")
    assert console.errors == []


async def test_dropped_websockets_reconnect_from_the_last_event(
    stack: Stack, context: BrowserContext
) -> None:
    console = Console()
    await context.add_init_script(SOCKET_TAP)
    await context.add_init_script(RECORDER)
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    job_id = await start_demo(page, 6)
    bar = page.get_by_role("progressbar")
    await expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]\d?$"), timeout=10_000)

    for _ in range(2):
        await expect(page.locator("#conn-label")).to_have_text("live", timeout=10_000)
        assert await page.evaluate("() => window.__dropJobSockets()") == 1
        await expect(page.locator("#conn-label")).to_have_text("reconnecting")
    await expect(page.locator("#conn-label")).to_have_text("live", timeout=10_000)
    await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=20_000)
    await expect(page.locator("#job-status")).to_have_text("completed")

    urls = [u for u in await page.evaluate("() => window.__sockets.urls") if "/ws/jobs/" in u]
    assert len(urls) >= 3, urls
    resumed = [int(u.rsplit("after=", 1)[1]) for u in urls[1:]]
    # each reconnect asks only for what it has not seen
    assert all(after > 0 for after in resumed), urls
    assert resumed == sorted(resumed), urls
    assert all(job_id in u for u in urls)
    assert_never_decreases((await recorded(page))["progress"])
    assert console.errors == []


async def test_the_job_progress_element_on_a_plain_page(
    stack: Stack, new_context: NewContext, artifacts: str
) -> None:
    console = Console()
    context = await new_context(viewport={"width": 900, "height": 700})
    page = await new_page(context, console)
    # the page a visitor is on made a job (with the visitor's cookie), then embeds its progress
    await open_home(page, stack.base_url)
    created = await page.evaluate("() => window.jobcast.submit('demo', {duration: 3})")
    await page.goto(f"{stack.base_url}/static/embed-demo.html?job={created['id']}")
    await page.evaluate("""() => {
      window.__done = [];
      window.__events = 0;
      document.addEventListener("job-progress:event", () => { window.__events += 1; });
      document.addEventListener("job-progress:done", (e) => {
        window.__done.push(e.detail.job.status);
      });
    }""")

    element = page.locator("job-progress")
    bar = element.get_by_role("progressbar")
    await expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]\d?$"), timeout=10_000)
    await expect(element.locator(".jp-state-text")).to_contain_text("live")
    await shot(page, artifacts, "embed-running")
    await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=20_000)
    await expect(element.locator(".jp-step")).to_have_text("Completed")
    await expect(element.locator(".jp-message")).to_have_text("Demo finished its 4 steps")
    assert await page.evaluate("() => window.__done") == ["completed"]
    assert await page.evaluate("() => window.__events") > 0
    await expect(page.locator("#log")).to_contain_text("done: completed")

    # a job that is not the visitor's (or does not exist) says so, and stops
    nobody = "00000000-0000-4000-8000-000000000000"
    await element.evaluate("(el, id) => el.setAttribute('job-id', id)", nobody)
    await expect(element.locator(".jp-step")).to_have_text("Job not found.", timeout=15_000)

    # the same element on a page made from nothing but the script and the tag
    job_id = await submit_as_visitor(page)
    await page.set_content(
        f'<script src="{stack.base_url}/static/jobcast.js"></script>'
        f'<job-progress job-id="{job_id}"></job-progress>'
    )
    await expect(page.locator("job-progress").get_by_role("progressbar")).to_have_attribute(
        "aria-valuenow", "100", timeout=20_000
    )
    assert console.errors == []


# Every text each My-jobs row's percentage takes, by job id, in order.
ROW_RECORDER = """() => {
  const seen = (window.__rows = {});
  const record = () => {
    for (const row of document.querySelectorAll("#job-list li")) {
      const list = seen[row.dataset.jobId] || (seen[row.dataset.jobId] = []);
      const pct = row.querySelector(".job-row-pct").textContent;
      if (list[list.length - 1] !== pct) list.push(pct);
    }
  };
  new MutationObserver(record).observe(document.getElementById("job-list"),
    { subtree: true, childList: true, characterData: true });
}"""


async def test_my_jobs_rows_say_which_job_and_move_while_another_job_is_open(
    stack: Stack, context: BrowserContext, artifacts: str
) -> None:
    console = Console()
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    await page.evaluate(ROW_RECORDER)
    opened = await start_demo(page, 30)
    await expect(page.locator("#job-status")).to_have_text("running", timeout=10_000)

    # jobs started elsewhere (another tab, the app): a site audit, told apart by its site
    audit = await submit_as_visitor(page, "site_audit", {"url": "https://example.invalid/shop/"})
    other = await submit_as_visitor(page, "demo", {"duration": 4})
    audit_row = page.locator(f"#job-list li[data-job-id='{audit}']")
    await expect(audit_row.locator(".job-row-type")).to_have_text("Site audit")
    await expect(audit_row.locator(".job-row-label")).to_have_text("example.invalid/shop")
    # a demo's input has no text to tell it apart: its row shows no label
    other_row = page.locator(f"#job-list li[data-job-id='{other}']")
    await expect(other_row.locator(".job-row-label")).to_be_hidden()

    # the other job's start is news (it says which job); the open job's is not
    started = page.locator(f"#toasts .toast[data-job-id='{other}']")
    await expect(started).to_contain_text(f"Demo {other[:8]} started", timeout=10_000)
    await expect(started).to_contain_text("you can close this tab")
    await expect(page.locator(f"#toasts .toast[data-job-id='{opened}']")).to_have_count(0)

    # its row moves as it runs, though only the open job has a socket of its own
    await expect(other_row).to_have_attribute("data-status", "completed", timeout=20_000)
    taken = (await page.evaluate("() => window.__rows"))[other]
    # step and status events alone would give 0, 10, 40, 80 and 100 %
    between = [p for p in taken if p not in ("0%", "10%", "40%", "80%", "100%")]
    assert len(between) >= 3, taken
    assert [int(p[:-1]) for p in taken] == sorted(int(p[:-1]) for p in taken), taken
    # its end replaces its start: one toast for the job
    await expect(started).to_have_count(1)
    await expect(started).to_contain_text(f"Demo {other[:8]} finished")
    await expect(page.locator("#job-status")).to_have_text("running")
    await shot(page, artifacts, "my-jobs-live")
    assert console.errors == []


async def submit_as_visitor(
    page: Page, job_type: str = "demo", job_input: dict[str, object] | None = None
) -> str:
    """A job of this page's visitor, made the way a page of the app would make it."""
    created = await page.evaluate(
        "([type, input]) => window.jobcast.submit(type, input)",
        [job_type, job_input or {"duration": 0.5}],
    )
    job_id: str = created["id"]
    return job_id


async def test_an_api_job_of_another_owner_is_not_shown(
    stack: Stack, context: BrowserContext
) -> None:
    # a job made with someone else's token is a plain "not found" to this visitor
    token = await stack.owner()
    async with stack.client(token) as client:
        other = await submit(client, "demo", duration=0.2)
    console = Console()
    page = await new_page(context, console)
    await open_home(page, stack.base_url, f"/jobs/{other}")
    await expect(page.locator("#panel-error")).to_contain_text("was not found")
    await expect(page.locator("#job-view")).to_be_hidden()
    assert console.errors == []


# Every status each My-jobs row takes, by job id, in order.
STATUS_RECORDER = """() => {
  const seen = (window.__statuses = {});
  new MutationObserver(() => {
    for (const row of document.querySelectorAll("#job-list li")) {
      const list = seen[row.dataset.jobId] || (seen[row.dataset.jobId] = []);
      if (list[list.length - 1] !== row.dataset.status) list.push(row.dataset.status);
    }
  }).observe(document.getElementById("job-list"),
    { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"] });
}"""


async def test_a_row_skips_an_event_older_than_the_list_it_read(
    stack: Stack, context: BrowserContext
) -> None:
    """The list is read over HTTP while the feed runs, so an event written as the list was
    read can come after it; the row skips it by the job's ``seq``. Here the feed holds the
    job's start back until the row shows the job completed, then sends it, and a resync
    after it (the page handles a feed's messages in order): the row never went back."""
    console = Console()
    page = await new_page(context, console)
    feeds: list[WebSocketRoute] = []
    held: list[str | bytes] = []

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            data = json.loads(message)
            if not held and data.get("kind") == "status" and data.get("status") == "running":
                held.append(message)
            else:
                ws.send(message)

        server.on_message(to_page)
        feeds.append(ws)

    await page.route_web_socket(lambda url: urlsplit(url).path == "/ws", route)
    await open_home(page, stack.base_url)
    await page.evaluate(STATUS_RECORDER)
    job_id = await submit_as_visitor(page, "demo", {"duration": 1})
    row = page.locator(f"#job-list li[data-job-id='{job_id}']")
    await expect(row).to_have_attribute("data-status", "completed", timeout=20_000)
    assert held and json.loads(held[0])["job_id"] == job_id, held
    async with page.expect_response(lambda r: urlsplit(r.url).path == "/api/jobs"):
        feeds[-1].send(held[0])
        feeds[-1].send(json.dumps({"type": "resync"}))  # the list reads itself again
    await expect(row).to_have_attribute("data-status", "completed")
    statuses = (await page.evaluate("() => window.__statuses"))[job_id]
    assert statuses[statuses.index("completed") :] == ["completed"], statuses
    assert console.errors == []
