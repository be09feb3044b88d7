"""The new-job form's concurrency key: a job held by it says why on its page."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.browser.pages import Console, new_page, open_home, start_demo
from tests.support import Stack

pytestmark = pytest.mark.browser


async def _with_key(page: Page, key: str, limit: str) -> None:
    await page.get_by_text("Concurrency limit").click()
    await page.get_by_label("Concurrency key").fill(key)
    await page.get_by_label("At most at once").fill(limit)


async def test_a_job_started_with_a_key_waits_for_its_slot_and_says_so(
    stack: Stack, context: BrowserContext
) -> None:
    console = Console()
    page = await new_page(context, console)
    key = f"browser:{uuid.uuid4().hex[:8]}"

    await open_home(page, stack.base_url)
    await page.select_option("select[name=type]", "demo")
    await _with_key(page, key, "1")
    first = await start_demo(page, 6)
    await expect(page.locator("#job-status")).to_have_text("running", timeout=15_000)

    await open_home(page, stack.base_url)
    await _with_key(page, key, "1")
    second = await start_demo(page, 1)
    # the key's one slot is the first job's: the second is parked, and its page says why
    await expect(page.locator("#job-status")).to_have_text("pending", timeout=15_000)
    await expect(page.locator("#job-message")).to_have_text(
        f"Waiting for a slot of {key} (at most 1 at once)", timeout=15_000
    )
    # once the first ends, the second takes the slot and runs to its end
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=30_000)
    assert first != second
    assert console.errors == []


async def test_a_bad_limit_or_key_is_refused_at_the_form(
    stack: Stack, context: BrowserContext
) -> None:
    page = await new_page(context, Console())
    await open_home(page, stack.base_url)
    await page.select_option("select[name=type]", "demo")
    await page.fill("input[name=duration]", "1")
    start = page.get_by_role("button", name="Start", exact=True)

    await _with_key(page, "tenant:1", "0")
    await start.click()  # checked in the page: nothing is sent
    await expect(page.locator("#form-error")).to_have_text(
        "The limit must be a whole number of 1 or more."
    )
    await expect(page.get_by_label("At most at once")).to_have_attribute("aria-invalid", "true")

    await page.get_by_label("At most at once").fill("2")
    await page.get_by_label("Concurrency key").fill("type:demo")  # reserved: the server's 422
    await start.click()
    await expect(page.locator("#form-error")).to_contain_text(re.compile("reserved"))
    await expect(page.get_by_label("Concurrency key")).to_have_attribute("aria-invalid", "true")
    assert page.url.rstrip("/") == stack.base_url
