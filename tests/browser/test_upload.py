"""csv_insights from the page: choose CSV files, Start, and read the profile."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.pages import Console, new_page, open_home, shot
from tests.support import Stack

pytestmark = pytest.mark.browser


async def test_a_csv_job_from_the_file_picker(
    stack: Stack, context: BrowserContext, artifacts: str
) -> None:
    console = Console()
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    await page.select_option("select[name=type]", "csv_insights")
    picker = page.locator("input[name=upload_ids]")
    await expect(picker).to_have_attribute("type", "file")

    # no file chosen: a clear message, no job
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator("#form-error")).to_contain_text("CSV file")

    rows = "\n".join(f"{i},{i * 2},{'ab'[i % 2]}" for i in range(1, 101))
    await picker.set_input_files(
        [
            {
                "name": "numbers.csv",
                "mimeType": "text/csv",
                "buffer": f"n,double,k\n{rows}\n".encode(),
            },
        ]
    )
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=30_000)
    await expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    await page.locator("#result-details summary").click()
    await expect(page.locator("#result-json")).to_contain_text("numbers.csv")
    # its My-jobs row is told apart by the file's name (the input holds only its upload id)
    job_id = page.url.rsplit("/", 1)[-1]
    row = page.locator(f"#job-list li[data-job-id='{job_id}']")
    await expect(row.locator(".job-row-label")).to_have_text("numbers.csv")
    await shot(page, artifacts, "csv-completed")
    assert console.errors == []
