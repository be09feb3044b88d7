"""The page in a real browser: Start a demo job, see the bar reach 100 and a toast."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, expect

from tests.support import Stack

pytestmark = pytest.mark.browser

# Chromium logs refused requests by itself (the first visit's 401 before a session exists)
_NETWORK_NOISE = re.compile(r"Failed to load resource|WebSocket connection")


async def test_start_a_demo_job_and_see_it_finish(stack: Stack, browser: Browser, artifacts: str) -> None:
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: _keep_errors(m, errors))
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    await page.goto(stack.base_url + "/")
    await page.select_option("select[name=type]", "demo")
    await page.fill("input[name=duration]", "1.5")
    await page.get_by_role("button", name="Start", exact=True).click()

    bar = page.get_by_role("progressbar")
    await expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^([1-9]\d?)$"), timeout=10_000)
    await page.screenshot(path=str(Path(artifacts) / "page-running.png"))
    await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=20_000)
    toast = page.locator("[aria-live] .toast")
    await expect(toast).to_contain_text("Job completed", timeout=10_000)
    await expect(page.locator("#steps li[data-state=completed]")).to_have_count(4)
    await page.screenshot(path=str(Path(artifacts) / "page-completed.png"))

    # the job id is in the URL: a reload shows the finished job where it stands
    assert "job=" in page.url
    await page.reload()
    await expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    await expect(page.locator("#job-status")).to_have_text("completed")
    assert errors == []
    await context.close()


async def test_without_websockets_the_page_polls_to_the_end(stack: Stack, browser: Browser) -> None:
    context = await browser.new_context()
    # a browser (or proxy) without websockets: the page must fall back to polling
    await context.add_init_script("delete window.WebSocket;")
    page = await context.new_page()
    await page.goto(stack.base_url + "/")
    await page.select_option("select[name=type]", "demo")
    await page.fill("input[name=duration]", "1")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator("#conn-label")).to_have_text("polling", timeout=10_000)
    await expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100", timeout=20_000)
    await expect(page.locator("[aria-live] .toast")).to_contain_text("Job completed")
    await context.close()


def _keep_errors(message: ConsoleMessage, errors: list[str]) -> None:
    if message.type == "error" and not _NETWORK_NOISE.search(message.text):
        errors.append(message.text)
