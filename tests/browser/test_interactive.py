"""A person in the loop, streamed output, run-time steps, pause and drafts, in the browser.

Driven with the demo type's ``ask``, ``stream`` and ``items`` inputs against a real web
process and worker: the question's form built from its schema, answered from a second tab
while the first watches, the owner feed's "needs your input" toast in every tab, the
stream panel resumed after a dropped socket without a gap or a repeat.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import BrowserContext, Page, Route, expect

from tests.browser.pages import HIDE_TAB, SHOW_TAB, SOCKET_TAP, Console, new_page, open_home, shot
from tests.support import ROOT, Stack

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "docs" / "screenshots"
REPORT_TEXT = (
    "The demo fetched its data, analyzed it and found nothing out of the ordinary. "
    "Every step ran in turn, each reported its progress, and this report was written "
    "word by word while you watched."
)


async def start_with(page: Page, duration: float, *, draft: bool = False, **checks: object) -> str:
    """Fill the demo's form (booleans ticked, numbers typed) and press Start or Save as draft."""
    await page.select_option("select[name=type]", "demo")
    await page.fill("#job-form input[name=duration]", str(duration))
    await page.locator("#job-form").get_by_text("More options").click()
    for name, value in checks.items():
        if isinstance(value, bool):
            await page.locator(f"#job-form input[name={name}]").set_checked(value)
        else:
            await page.fill(f"#job-form input[name={name}]", str(value))
    before = page.url
    label = "Save as draft" if draft else "Start"
    await page.locator("#job-form").get_by_role("button", name=label, exact=True).click()
    await expect(page).not_to_have_url(before, timeout=10_000)
    match = re.search(r"/jobs/([0-9a-f-]{36})$", page.url)
    assert match, page.url
    return match.group(1)


async def test_a_question_answered_in_a_second_tab_resumes_the_job_in_both(
    stack: Stack, context: BrowserContext, artifacts: str
) -> None:
    console = Console()
    first = await new_page(context, console)
    await open_home(first, stack.base_url)
    second = await new_page(context, console)
    await open_home(second, stack.base_url)

    job_id = await start_with(first, 1, ask=True, stream=True)
    form = first.locator("#job-input")
    await expect(form).to_be_visible(timeout=15_000)
    await expect(first.locator("#job-status")).to_have_text("waiting")
    await expect(form.locator("#input-prompt")).to_have_text("Approve the analysis?")
    # the form is built from the schema: a checkbox for the boolean, a text box for the note
    await expect(form.get_by_label("Approve the analysis")).to_have_attribute("type", "checkbox")
    await expect(form.get_by_label("Note")).to_be_visible()

    # the other tab hears of it on the owner feed: a toast with a link, and a row that waits
    toast = second.locator("[aria-live] .toast", has_text="Needs your input")
    await expect(toast).to_be_visible(timeout=10_000)
    await expect(toast.get_by_role("link")).to_have_attribute("href", f"/jobs/{job_id}")
    row = second.locator(f"#job-list li[data-job-id='{job_id}']")
    await expect(row).to_have_attribute("data-status", "waiting")
    await expect(row.locator(".badge")).to_have_text("waiting")
    await expect(first.locator("[aria-live] .toast", has_text="Needs your input")).to_have_count(1)
    await expect(first.locator("#steps li[data-step='analyze'] .step-state")).to_have_text(
        "Needs your input"
    )
    await shot(first, artifacts, "job-waiting-form", full_page=True)
    await first.mouse.move(0, 0)
    await first.locator("#job-panel").screenshot(
        path=str(SCREENSHOTS / "job-waiting-form.png"), animations="disabled"
    )

    # answered from the second tab, through the toast's link
    await toast.get_by_role("link").click()
    await expect(second.locator("#job-input")).to_be_visible()
    await second.locator("#job-input").get_by_label("Approve the analysis").check()
    await second.locator("#job-input").get_by_label("Note").fill("looks right")
    await second.get_by_role("button", name="Send answer").click()

    # both tabs see it go on (the question's toast goes away), its stream, and the end
    for page in (first, second):
        await expect(page.locator("#job-input")).to_be_hidden(timeout=10_000)
        await expect(page.locator(".toast", has_text="Needs your input")).to_have_count(0)
        await expect(page.locator("#job-status")).to_have_text("completed", timeout=30_000)
        await expect(page.locator(".stream[data-stream='report'] .stream-text")).to_have_text(
            REPORT_TEXT
        )
    assert console.errors == []


async def test_a_wrong_answer_is_marked_on_its_field_and_a_second_answer_is_refused(
    stack: Stack, context: BrowserContext
) -> None:
    console = Console()
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    job_id = await start_with(page, 0.5, ask=True)
    form = page.locator("#job-input")
    await expect(form).to_be_visible(timeout=15_000)
    # a hidden tab says so in its title
    await page.evaluate(HIDE_TAB)
    await expect(page).to_have_title("Demo · needs input · jobcast")
    await page.evaluate(SHOW_TAB)
    # a note over the schema's 1000 characters: the server's 422 names answer.note
    await form.get_by_label("Note").evaluate("(el) => el.removeAttribute('maxlength')")
    await form.get_by_label("Note").fill("x" * 1001)
    await page.get_by_role("button", name="Send answer").click()
    note_field = form.locator(".field[data-field='note']")
    await expect(note_field).to_have_class(re.compile(r"\binvalid\b"))
    await expect(note_field.locator(".field-error")).to_be_visible()
    await expect(form.get_by_label("Note")).to_have_attribute("aria-invalid", "true")

    # a 409 (answered meanwhile elsewhere) is said in words, the form kept
    async def conflict(route: Route) -> None:
        body = '{"error": {"code": "conflict", "message": "already answered"}}'
        await route.fulfill(status=409, content_type="application/json", body=body)

    await page.route(f"**/api/jobs/{job_id}/input", conflict)
    await form.get_by_label("Note").fill("late")
    await page.get_by_role("button", name="Send answer").click()
    await expect(form.locator("#input-error")).to_contain_text("already answered")
    await page.unroute(f"**/api/jobs/{job_id}/input")

    # answered by a script: the page hears of it, hides the form, and the job goes on
    answered = await page.evaluate(
        "(id) => fetch(`/api/jobs/${id}/input`, {method: 'POST', credentials: 'same-origin',"
        " headers: {'Content-Type': 'application/json'},"
        " body: JSON.stringify({answer: {approve: false, note: 'no'}})}).then(r => r.status)",
        job_id,
    )
    assert answered == 202
    await expect(form).to_be_hidden(timeout=10_000)
    await expect(page.locator("#job-status")).to_have_text("failed", timeout=15_000)
    await expect(page.locator("#job-error-message")).to_contain_text("not approved: no")
    assert console.errors == []


async def test_streamed_output_resumes_after_a_dropped_socket_without_gap_or_repeat(
    stack: Stack, context: BrowserContext, artifacts: str
) -> None:
    console = Console()
    await context.add_init_script(SOCKET_TAP)
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    await start_with(page, 24, stream=True, items=4)

    # run-time steps: one per item, nested under fetch, with their counters
    items = page.locator("#steps li[data-parent='fetch']")
    await expect(items).to_have_count(4, timeout=15_000)
    await expect(items.first.locator(".step-counters")).to_have_text("2 / 2", timeout=15_000)
    await expect(page.locator("#metadata-list [data-key='items_found'] dd")).to_have_text("4")
    await expect(page.locator("#metadata-list [data-key='items_done'] dd")).to_have_text(
        "4", timeout=15_000
    )

    text = page.locator(".stream[data-stream='report'] .stream-text")
    conn = page.locator("#conn-state")
    # dropped twice while the report streams, each time once the page is live again
    for words in ("The demo", "analyzed it"):
        await expect(text).to_contain_text(words, timeout=20_000)
        await expect(conn).to_have_attribute("data-state", "live")
        assert await page.evaluate("() => window.__dropJobSockets()") == 1
    await expect(text).to_contain_text("Every step")
    await shot(page, artifacts, "job-streaming", full_page=True)
    await page.locator("#job-panel").screenshot(
        path=str(SCREENSHOTS / "job-streaming.png"), animations="disabled"
    )
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=30_000)
    assert await text.text_content() == REPORT_TEXT
    assert console.errors == []


async def test_pause_and_resume_from_the_page(stack: Stack, context: BrowserContext) -> None:
    console = Console()
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    await start_with(page, 4)
    await expect(page.locator("#job-status")).to_have_text("running", timeout=15_000)
    await page.get_by_role("button", name="Pause").click()
    await expect(page.locator("#job-status")).to_have_text("paused", timeout=15_000)
    await expect(page.locator("#job-status")).to_have_attribute("data-status", "paused")
    await expect(page.get_by_role("button", name="Pause")).to_be_hidden()
    steps_done = await page.locator("#steps li[data-state='completed']").count()
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=30_000)
    # it went on from its checkpoint: the steps completed before the pause were skipped
    assert steps_done >= 1
    assert console.errors == []


async def test_a_draft_is_edited_then_started(stack: Stack, context: BrowserContext) -> None:
    console = Console()
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    job_id = await start_with(page, 30, draft=True)
    await expect(page.locator("#job-status")).to_have_text("draft")
    draft = page.locator("#job-draft")
    await expect(draft).to_be_visible()
    await expect(draft.locator("input[name=duration]")).to_have_value("30", timeout=10_000)
    await draft.locator("input[name=duration]").fill("0.5")
    await draft.get_by_role("button", name="Start job").click()
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=30_000)
    view = await page.evaluate("(id) => jobcast.getJob(id)", job_id)
    assert view["input"]["duration"] == 0.5
    assert console.errors == []


async def test_the_element_fires_input_stream_and_metadata_events(
    stack: Stack, context: BrowserContext
) -> None:
    console = Console()
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    created = await page.evaluate(
        "() => jobcast.submit('demo', {duration: 12, ask: true, stream: true, items: 2})"
    )
    await page.add_init_script(SOCKET_TAP)
    # listening before the page's element connects: no event can come before the listeners
    await page.add_init_script("""(() => {
      window.__seen = { input: [], text: "", pieces: 0, metadata: {} };
      document.addEventListener("job-progress:input", (e) => {
        window.__seen.input.push(e.detail.request ? e.detail.request.step : null);
      });
      document.addEventListener("job-progress:stream", (e) => {
        window.__seen.text += e.detail.chunk.text;
        window.__seen.pieces += 1;
      });
      document.addEventListener("job-progress:metadata", (e) => {
        Object.assign(window.__seen.metadata, e.detail.changed);
      });
    })()""")
    await page.goto(f"{stack.base_url}/static/embed-demo.html?job={created['id']}")
    element = page.locator("job-progress")
    await expect(element.locator(".jp-step")).to_have_text("Needs your input", timeout=15_000)
    await expect(element.locator(".jp-message")).to_have_text("Approve the analysis?")
    status = await page.evaluate(
        "(id) => jobcast.answer(id, {approve: true}).then((r) => r.status)", created["id"]
    )
    assert status == "pending"
    # dropped twice while the report streams: each reconnect resumes the text where it was
    for chars in (20, 100):
        await page.wait_for_function(
            "(n) => window.__seen.text.length > n", arg=chars, timeout=30_000
        )
        assert await page.evaluate("() => window.__dropJobSockets()") == 1
    await expect(element.locator(".jp-step")).to_have_text("Completed", timeout=30_000)
    seen = await page.evaluate("() => window.__seen")
    assert seen["input"] == ["analyze", None]
    assert seen["text"] == REPORT_TEXT and seen["pieces"] >= 1
    assert seen["metadata"] == {"items_found": 2, "items_done": 2}
    assert console.errors == []
