"""Headless Debian Chromium driven by playwright (its own browser download does not work here)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from tests.browser.pages import DESKTOP

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for every browser module a test process runs: each test opens contexts of
    its own (``new_context``), closed after it."""
    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


NewContext = Callable[..., Awaitable[BrowserContext]]


@pytest.fixture
async def new_context(browser: Browser) -> AsyncIterator[NewContext]:
    """Opens browser contexts (playwright's options) for one test; all are closed after it,
    whether it passed or failed, so a failed test leaves no page running into the next.

    Each asks for reduced motion unless the test says otherwise: the page's endless
    animations (a running job's pulse, shimmer and spinner) cost headless Chromium about a
    third of a core per open page in software rendering, and about a twentieth without
    them; the page behaves the same either way (its script never reads the preference).
    """
    opened: list[BrowserContext] = []

    async def open_context(**options: Any) -> BrowserContext:
        options.setdefault("reduced_motion", "reduce")
        context = await browser.new_context(**options)
        opened.append(context)
        return context

    try:
        yield open_context
    finally:
        for context in opened:
            await context.close()


@pytest.fixture
async def context(new_context: NewContext) -> BrowserContext:
    """A desktop-sized browser context of the test's own, closed after it."""
    return await new_context(viewport=DESKTOP)
