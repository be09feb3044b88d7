"""A first visit in Chromium: not one error in the console, not one failed request, and a
second visit loads the page's versioned files from the cache, compressed the first time."""

from __future__ import annotations

from playwright.async_api import BrowserContext, ConsoleMessage, Response

from tests.browser.pages import open_home
from tests.support import Stack


async def test_a_first_visit_logs_no_error_and_a_second_uses_the_cache(
    stack: Stack, context: BrowserContext
) -> None:
    logged: list[str] = []
    failed: list[str] = []
    packed: dict[str, str] = {}

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":  # network errors included: a 401 is one
            logged.append(message.text)

    def on_response(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.request.method} {response.url}")
        if "/static/" in response.url:
            packed[response.url] = response.headers.get("content-encoding", "")

    page = await context.new_page()
    page.on("console", on_console)
    page.on("pageerror", lambda exc: logged.append(str(exc)))
    page.on("response", on_response)
    await open_home(page, stack.base_url)
    await page.wait_for_load_state("networkidle")
    assert logged == []
    assert failed == []
    scripts = [url for url in packed if url.split("?")[0].endswith((".js", ".css"))]
    assert scripts and all("?v=" in url for url in scripts), scripts
    assert {packed[url] for url in scripts} == {"gzip"}, packed

    await open_home(page, stack.base_url)  # a second visit, not a reload
    sizes = await page.evaluate(
        """() => performance.getEntriesByType("resource")
              .filter((e) => e.name.includes("/static/") && e.name.includes("?v="))
              .map((e) => [e.name, e.transferSize])"""
    )
    assert sizes, "no versioned file loaded"
    assert [name for name, size in sizes if size > 0] == [], sizes
    assert logged == [] and failed == []
