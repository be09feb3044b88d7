"""The page with the keyboard alone: start a job that asks a question, follow it, answer,
cancel it through the dialog, reach a toast and close it. After every action focus is on
something that makes sense, never on <body>, and its ring can be seen."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import NewContext
from tests.browser.pages import DESKTOP, Console, new_page, open_home
from tests.support import Stack

pytestmark = pytest.mark.browser

# The focused element: what it is, and whether its focus can be seen (an outline or a ring)
FOCUS = """
() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const ring = (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0) ||
    (style.boxShadow && style.boxShadow !== "none");
  return {
    tag: el.tagName.toLowerCase(), id: el.id,
    text: (el.innerText || el.value || "").trim().slice(0, 60),
    name: el.getAttribute("name"), type: el.getAttribute("type"),
    visible: el.matches(":focus-visible") && Boolean(ring), inToast: Boolean(el.closest(".toast")),
  };
}
"""


async def focused(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = await page.evaluate(FOCUS)
    return found


async def tab_to(page: Page, want: str, limit: int = 60, back: bool = False) -> dict[str, Any]:
    """Presses Tab (or Shift+Tab) until the focused element's id, name or text is
    ``want``; every stop on the way must show its focus."""
    for _ in range(limit):
        await page.keyboard.press("Shift+Tab" if back else "Tab")
        now = await focused(page)
        assert now["tag"] != "body", f"focus fell to <body> on the way to {want!r}"
        assert now["visible"], f"focus on {now} cannot be seen"
        if want in (now["id"], now["name"], now["text"]):
            return now
    raise AssertionError(f"{want!r} not reached with {limit} presses of Tab")


async def assert_focus_on(page: Page, element_id: str) -> None:
    await expect(page.locator(f"#{element_id}")).to_be_focused(timeout=15_000)
    now = await focused(page)
    assert now["visible"], f"focus on {now} cannot be seen"


async def test_the_whole_journey_with_the_keyboard_alone(
    stack: Stack, new_context: NewContext
) -> None:
    console = Console()
    context = await new_context(viewport=DESKTOP)
    page = await new_page(context, console)
    await open_home(page, stack.base_url)

    # the skip link first, then the form: a demo job that will ask a question
    await page.keyboard.press("Tab")
    assert (await focused(page))["text"] == "Skip to content"
    await tab_to(page, "duration")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("30")
    await tab_to(page, "More options")
    await page.keyboard.press("Enter")
    await tab_to(page, "ask")
    await page.keyboard.press("Space")
    await tab_to(page, "start-button")
    await page.keyboard.press("Enter")

    # Start leads to the job: its heading holds focus
    await expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f-]{36}$"), timeout=10_000)
    await assert_focus_on(page, "job-panel-title")
    await expect(page.locator("#job-panel-title")).to_have_text("Demo")
    await expect(page.locator("#job-status")).to_have_text("waiting", timeout=20_000)

    # the question: approve, a note, send
    await tab_to(page, "approve")
    await page.keyboard.press("Space")
    await tab_to(page, "note")
    await page.keyboard.type("looks right")
    await tab_to(page, "input-submit")
    await page.keyboard.press("Enter")
    await expect(page.locator("#job-input")).to_be_hidden(timeout=10_000)
    await expect(page.locator("#job-status")).to_have_text("running", timeout=10_000)
    # the form went with the answer: focus goes back to the job
    await assert_focus_on(page, "job-panel-title")

    # Cancel through the dialog: Keep running has focus first, then Cancel job confirms
    await tab_to(page, "cancel-button")
    await page.keyboard.press("Enter")
    dialog = page.locator("#cancel-dialog")
    await expect(dialog).to_be_visible()
    assert (await focused(page))["text"] == "Keep running"
    await page.keyboard.press("Tab")
    assert (await focused(page))["text"] == "Cancel job"
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#job-status")).to_have_text("cancelled", timeout=15_000)
    # focus waits on Retry, the next thing to do
    await assert_focus_on(page, "retry-button")
    # and no toast for the cancel just pressed
    await expect(page.locator("#toasts .toast")).to_have_count(0)

    # on a My-jobs row when another job appears and the list reloads: focus stays on the row
    rows = page.locator("#job-list li")
    await expect(rows).to_have_count(1)
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await page.evaluate("() => document.activeElement.matches('.job-row-link')"):
            break
    row_link = page.locator(".job-row-link").first
    await expect(row_link).to_be_focused()

    # another job ends meanwhile: its toast is reached with Tab, and Escape closes it
    await page.evaluate(
        """() => fetch("/api/jobs", {method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify({type: "demo", input: {duration: 0.3}})})"""
    )
    await expect(rows).to_have_count(2, timeout=20_000)
    focused_job = await page.evaluate("() => document.activeElement.dataset.jobLink || null")
    assert focused_job is not None and focused_job in page.url, focused_job
    toast = page.locator("#toasts .toast")
    await expect(toast).to_be_visible(timeout=20_000)
    for _ in range(80):
        await page.keyboard.press("Tab")
        now = await focused(page)
        assert now["tag"] != "body" and now["visible"], now
        if now["inToast"]:
            break
    assert now["inToast"] and now["text"] == "View job", now
    await page.keyboard.press("Escape")
    await expect(toast).to_have_count(0)
    await assert_focus_on(page, "job-panel-title")
    assert console.errors == []
