"""The screenshots in docs/screenshots/, taken from the real page in Chromium: a running
job, a completed one with a toast for another, a failed one, My jobs (a site audit among
them, labelled by its site), a phone, the page in
German, and <job-progress> on the embed demo. Each shot waits for the state it shows."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import NewContext
from tests.browser.pages import DESKTOP, PHONE, Console, new_page, open_home, start_demo
from tests.support import ROOT, Stack

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "docs" / "screenshots"


async def save(page: Page, name: str, *, full_page: bool = False) -> None:
    await page.mouse.move(0, 0)
    await page.screenshot(
        path=str(SCREENSHOTS / f"{name}.png"), animations="disabled", full_page=full_page
    )


async def submit(page: Page, job_type: str = "demo", **job_input: object) -> None:
    """A job of the page's visitor, started elsewhere (as another tab would)."""
    await page.evaluate(
        """([type, input]) => fetch("/api/jobs", {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({type, input})})""",
        [job_type, job_input],
    )


async def running(page: Page, duration: float) -> None:
    await start_demo(page, duration)
    bar = page.get_by_role("progressbar")
    await expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[3-6]\d$"), timeout=20_000)
    await expect(page.locator("#job-eta")).not_to_have_text("")


async def test_the_docs_screenshots(stack: Stack, new_context: NewContext) -> None:
    console = Console()
    context = await new_context(viewport=DESKTOP, reduced_motion="reduce")
    page = await new_page(context, console)
    await open_home(page, stack.base_url)

    await start_demo(page, 0.6, fail_step="analyze")
    await expect(page.locator("#job-status")).to_have_text("failed", timeout=20_000)
    await save(page, "job-failed-retry")

    await running(page, 8)
    await save(page, "job-running")
    # a site audit in My jobs, told apart by its site (example.invalid: it fails at once)
    await submit(page, "site_audit", url="https://example.invalid/shop/")
    audit = page.locator("#job-list li", has_text="example.invalid/shop")
    await expect(audit).to_have_attribute("data-status", "failed", timeout=20_000)
    await page.locator("#my-jobs").screenshot(
        path=str(SCREENSHOTS / "my-jobs.png"), animations="disabled"
    )
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=30_000)
    await page.evaluate(
        "() => document.querySelectorAll('#toasts .toast').forEach((t) => t.dismiss())"
    )
    await submit(page, duration=0.5)
    toast = page.locator("#toasts .toast")
    await expect(toast).to_contain_text("finished", timeout=20_000)
    await save(page, "job-completed-toast")

    phone = await new_page(await new_context(viewport=PHONE, reduced_motion="reduce"), console)
    await open_home(phone, stack.base_url)
    await running(phone, 8)
    await save(phone, "phone")

    german = await new_page(
        await new_context(viewport=DESKTOP, locale="de-DE", reduced_motion="reduce"), console
    )
    await open_home(german, stack.base_url)
    await german.locator("#job-form input[name=duration]").fill("8")
    await german.get_by_role("button", name="Starten", exact=True).click()
    bar = german.get_by_role("progressbar")
    await expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[3-6]\d$"), timeout=20_000)
    await save(german, "job-german")

    embed = await new_page(await new_context(viewport={"width": 800, "height": 700}), console)
    await embed.goto(f"{stack.base_url}/static/embed-demo.html")
    await embed.get_by_role("button", name="Start a demo job").click()
    await expect(embed.locator("job-progress .jp[data-status=completed]")).to_be_visible(
        timeout=30_000
    )
    await save(embed, "embed", full_page=True)
    assert console.errors == []
