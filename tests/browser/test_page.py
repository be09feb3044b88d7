"""The job page in a real browser: progress, steps, ETA, result, failure, retry, cancel."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import BrowserContext, Page, Response, expect

from tests.browser.conftest import NewContext
from tests.browser.pages import (
    PHONE,
    RECORDER,
    Console,
    assert_never_decreases,
    new_page,
    open_home,
    recorded,
    shot,
    start_demo,
)
from tests.support import Stack

pytestmark = pytest.mark.browser

STEP_ORDER = ["waiting", "running", "completed"]


async def test_start_a_demo_job_and_see_it_finish(
    stack: Stack, context: BrowserContext, artifacts: str
) -> None:
    console = Console()
    await context.add_init_script(RECORDER)
    page = await new_page(context, console)

    await open_home(page, stack.base_url)
    job_id = await start_demo(page, 4)
    assert page.url == f"{stack.base_url}/jobs/{job_id}"

    bar = page.get_by_role("progressbar")
    await expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^([3-8]\d)$"), timeout=10_000)
    await expect(page.locator("#job-eta")).to_have_text(
        re.compile(r"^(about \d+ s left|almost done)$")
    )
    await expect(page.locator("#job-elapsed")).to_have_text(re.compile(r"^Running for "))
    await expect(page.locator("#conn-label")).to_have_text("live")
    await shot(page, artifacts, "job-running")

    await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=20_000)
    await expect(page.locator("#steps li[data-state=completed]")).to_have_count(4)
    await expect(page.locator("#steps li").first.locator(".step-duration")).to_have_text(
        re.compile(r"\d")
    )
    await expect(page.locator("#result-summary")).to_contain_text("Demo finished its 4 steps")
    await expect(page.locator("#job-eta")).to_have_text("")
    await expect(page.locator("#cancel-button")).to_be_hidden()
    # the page shows the end itself: no toast for the job on screen
    await expect(page.locator("[aria-live] .toast")).to_have_count(0)
    await shot(page, artifacts, "job-completed")

    rec = await recorded(page)
    assert_never_decreases(rec["progress"])
    assert rec["progress"][-1] == 100
    assert set(rec["steps"]) == {"validate", "fetch", "analyze", "report"}
    for step, states in rec["steps"].items():
        # every step goes from waiting to done, in order, never back
        assert states[0] == "waiting" and states[-1] == "completed", (step, states)
        assert_never_decreases([STEP_ORDER.index(s) for s in states], f"step {step}")
    for step in ("fetch", "analyze", "report"):
        assert "running" in rec["steps"][step], rec["steps"]

    # the raw result is one click away
    raw = page.locator("#result-details")
    await expect(raw.locator("pre")).to_be_hidden()
    await raw.locator("summary").click()
    await expect(raw.locator("pre")).to_contain_text('"summary": "Demo finished its 4 steps"')

    # a visitor who closed the tab and comes back to the home page sees the job and its result
    await page.close()
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    await expect(page.locator("#job-id")).to_have_text(job_id)
    await expect(page.locator("#job-status")).to_have_text("completed")
    await expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    await expect(page.locator("#result-summary")).to_contain_text("Demo finished its 4 steps")
    # no toast for a job that had already ended when the page opened
    await expect(page.locator("[aria-live] .toast")).to_have_count(0)
    assert console.errors == []


async def test_reload_halfway_and_the_bar_goes_on_from_where_it_was(
    stack: Stack, context: BrowserContext
) -> None:
    console = Console()
    await context.add_init_script(RECORDER)
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    job_id = await start_demo(page, 6)

    bar = page.get_by_role("progressbar")
    await expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^([3-6]\d)$"), timeout=15_000)
    before = (await recorded(page))["progress"]
    await page.reload()
    await expect(page.locator("#job-id")).to_have_text(job_id)
    await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=20_000)
    after = (await recorded(page))["progress"]

    assert_never_decreases(before)
    assert_never_decreases(after)
    # the first value drawn after the reload is where the job stood, not 0
    assert after[0] >= before[-1] > 0, (before, after)
    assert console.errors == []


async def test_without_websockets_the_page_polls_to_the_end(
    stack: Stack, context: BrowserContext
) -> None:
    console = Console()
    # a browser (or proxy) without websockets: the page must fall back to polling
    await context.add_init_script("delete window.WebSocket;")
    await context.add_init_script(RECORDER)
    page = await new_page(context, console)
    polls: list[tuple[str, str | None, int]] = []

    async def on_response(response: Response) -> None:
        url = response.url
        if re.search(r"/api/jobs/[0-9a-f-]{36}$", url):
            etag = await response.request.header_value("if-none-match")
            polls.append((url, etag, response.status))

    page.on("response", on_response)
    await open_home(page, stack.base_url)
    await start_demo(page, 3)
    await expect(page.locator("#conn-label")).to_have_text("polling", timeout=10_000)
    await expect(page.get_by_role("progressbar")).to_have_attribute(
        "aria-valuenow", "100", timeout=20_000
    )
    await expect(page.locator("#job-status")).to_have_text("completed")
    assert_never_decreases((await recorded(page))["progress"])
    # polls after the first carry the ETag they got, so an unchanged job costs a 304
    assert any(etag for _, etag, _ in polls), polls
    assert console.errors == []


async def test_cancel_a_running_job_through_the_confirm_dialog(
    stack: Stack, context: BrowserContext, artifacts: str
) -> None:
    console = Console()
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    await start_demo(page, 30)
    await expect(page.locator("#job-status")).to_have_text("running", timeout=10_000)

    dialog = page.locator("#cancel-dialog")
    cancel = page.locator("#job-view").get_by_role("button", name="Cancel job")
    # Escape closes the dialog and the job goes on
    await cancel.click()
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("button", name="Keep running")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#job-status")).to_have_text("running")

    await cancel.click()
    await dialog.get_by_role("button", name="Cancel job").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#job-status")).to_have_text("cancelled", timeout=10_000)
    await expect(cancel).to_be_hidden()
    # the cancel just pressed is no news: no toast for it
    await expect(page.locator("[aria-live] .toast")).to_have_count(0)
    await expect(page.get_by_role("button", name="Retry")).to_be_visible()
    # the step that was running is closed as cancelled, live and after a reload
    await assert_step_closed(page, "cancelled")
    await page.reload()
    await expect(page.locator("#job-status")).to_have_text("cancelled", timeout=10_000)
    await assert_step_closed(page, "cancelled")
    assert console.errors == []


async def assert_step_closed(page: Page, state: str) -> None:
    """No step of the job on the page still runs (no spinner): the one that ran is `state`."""
    await expect(page.locator("#steps li[data-state=running]")).to_have_count(0)
    await expect(page.locator(f"#steps li[data-state={state}]")).to_have_count(1)


async def test_a_job_out_of_time_shows_its_running_step_failed(
    stack: Stack, context: BrowserContext
) -> None:
    console = Console()
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    # the validate step takes 3 s of the 30: the 2 s time limit falls within it
    job_id = await page.evaluate(
        """async () => (await (await fetch("/api/jobs", {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({type: "demo", input: {duration: 30}, timeout_seconds: 2,
                max_attempts: 1})})).json()).id"""
    )
    await open_home(page, stack.base_url, f"/jobs/{job_id}")
    await expect(page.locator("#job-status")).to_have_text("failed", timeout=20_000)
    await assert_step_closed(page, "failed")
    await expect(page.locator("#steps li[data-step=validate]")).to_have_attribute(
        "data-state", "failed"
    )
    await page.reload()
    await expect(page.locator("#job-status")).to_have_text("failed", timeout=10_000)
    await assert_step_closed(page, "failed")
    assert console.errors == []


async def test_a_failed_job_shows_its_error_and_retry_starts_a_new_one(
    stack: Stack, context: BrowserContext, artifacts: str
) -> None:
    console = Console()
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    first = await start_demo(page, 1, fail_step="analyze")

    await expect(page.locator("#job-status")).to_have_text("failed", timeout=15_000)
    error = page.locator("#job-error")
    await expect(error).to_contain_text("the analyze step failed, as asked")
    await expect(error).to_contain_text("permanent")
    await expect(page.locator("#steps li[data-step=analyze]")).to_have_attribute(
        "data-state", "failed"
    )
    await expect(page.locator("#steps li[data-step=report]")).to_have_attribute(
        "data-state", "waiting"
    )
    # a permanent error: Retry is not the primary action, and says it is tried anyway
    retry = page.get_by_role("button", name="Retry anyway")
    await expect(retry).to_have_class(re.compile(r"button-secondary"))
    await shot(page, artifacts, "job-failed-retry")

    await page.get_by_role("button", name="Retry").click()
    await expect(page).not_to_have_url(re.compile(first), timeout=10_000)
    second = page.url.rsplit("/", 1)[1]
    assert re.fullmatch(r"[0-9a-f-]{36}", second) and second != first
    await expect(page.locator("#job-id")).to_have_text(second)
    await expect(page.locator("#job-lineage")).to_contain_text(f"Retry of job {first[:8]}")
    # the same input fails the same way, in the new job
    await expect(page.locator("#job-status")).to_have_text("failed", timeout=15_000)
    await expect(page.locator(f"#job-list li[data-job-id='{second}']")).to_have_attribute(
        "data-status", "failed"
    )
    # back goes to the first job
    await page.go_back()
    await expect(page.locator("#job-id")).to_have_text(first)
    assert console.errors == []


async def test_a_flaky_job_shows_its_second_attempt(stack: Stack, context: BrowserContext) -> None:
    console = Console()
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    await start_demo(page, 2, flaky=1)
    await expect(page.locator("#job-attempt")).to_have_text("Attempt 2 of 3", timeout=15_000)
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)
    await expect(page.locator("#result-summary")).to_contain_text("after 2 attempts")
    assert console.errors == []


async def test_phone_width(stack: Stack, new_context: NewContext, artifacts: str) -> None:
    console = Console()
    context = await new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    await start_demo(page, 5)
    await expect(page.get_by_role("progressbar")).to_have_attribute(
        "aria-valuenow", re.compile(r"^([2-8]\d)$"), timeout=10_000
    )
    await page.locator("#job-panel").scroll_into_view_if_needed()
    # nothing sticks out sideways
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    await page.screenshot(path=f"{artifacts}/phone-running.png", scale="css", animations="disabled")
    await expect(page.get_by_role("progressbar")).to_have_attribute(
        "aria-valuenow", "100", timeout=20_000
    )
    assert console.errors == []


async def test_the_eta_comes_from_step_estimates_and_never_goes_below_zero(
    stack: Stack, new_context: NewContext
) -> None:
    context = await new_context()
    page = await context.new_page()
    await open_home(page, stack.base_url)
    answers = await page.evaluate("""() => {
      const steps = (running) => [
        { name: "a", weight: 1, estimate_s: 1, status: "completed" },
        { name: "b", weight: 3, estimate_s: 3, status: "completed" },
        { name: "c", weight: 4, estimate_s: 4, status: running ? "running" : "waiting" },
        { name: "d", weight: 2, estimate_s: 2, status: "waiting" },
      ];
      const jc = window.jobcast;
      const clock = new jc.Countdown();
      clock.set(-3);
      return {
        stepStart: jc.estimateRemaining({ status: "running", progress: 40, steps: steps(true) }),
        halfway: jc.estimateRemaining({ status: "running", progress: 60, steps: steps(true) }),
        final: jc.estimateRemaining({ status: "completed", progress: 100, steps: steps(false) }),
        negative: clock.left(),
        texts: [0, 1.2, 42.4, 150, 7200].map(jc.describeEta),
      };
    }""")
    assert answers["stepStart"] == pytest.approx(6)  # all of c and d
    assert answers["halfway"] == pytest.approx(4)  # half of c, all of d
    assert answers["final"] is None
    assert answers["negative"] == 0
    assert answers["texts"] == [
        "almost done",
        "almost done",
        "about 42 s left",
        "about 3 min left",
        "about 2.0 h left",
    ]
