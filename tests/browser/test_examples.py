"""The two example systems end to end in Chromium: lead_scrape's 40-restaurant question
answered in the browser (from a second tab, both tabs following), its run-time steps and
their counters; company_analysis retried at its rate-limited step, and cancelled."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext, Page, expect

from jobcast.endpoints import Endpoints
from tests.browser.pages import Console, new_page, open_home, shot
from tests.conftest import DatabaseFactory
from tests.integration.test_examples_durable import EXAMPLES, RESTAURANTS, load_example
from tests.support import ROOT, Stack, launch

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="module")
async def examples(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(), endpoints.redis_url, tmp_path_factory.mktemp("examples"), **EXAMPLES
    )
    try:
        yield stack
    finally:
        stack.close()


async def start_type(page: Page, job_type: str, fields: dict[str, str]) -> str:
    await page.select_option("select[name=type]", job_type)
    form = page.locator("#job-form")
    for name, value in fields.items():
        box = form.locator(f"[name={name}]")
        if not await box.is_visible():
            await form.get_by_text("More options").click()
        await box.fill(value)
    before = page.url
    await form.get_by_role("button", name="Start", exact=True).click()
    await expect(page).not_to_have_url(before, timeout=10_000)
    match = re.search(r"/jobs/([0-9a-f-]{36})$", page.url)
    assert match, page.url
    return match.group(1)


async def test_lead_scrape_is_answered_in_a_second_tab_and_both_follow_it(
    examples: Stack, context: BrowserContext, artifacts: str
) -> None:
    console = Console()
    first = await new_page(context, console)
    await open_home(first, examples.base_url)
    job_id = await start_type(first, "lead_scrape", {"page_s": "0.3"})
    question = first.locator("#job-input")
    await expect(question).to_be_visible(timeout=15_000)
    await expect(question.locator("#input-prompt")).to_have_text(
        "Pick which of these 40 restaurants to enrich"
    )
    boxes = question.locator(".choice input[type=checkbox]")
    await expect(boxes).to_have_count(len(RESTAURANTS))
    await expect(question.locator(".choice-count")).to_have_text("0 of 40 selected")
    await expect(first.locator("#metadata-list [data-key='candidates'] dd")).to_have_text("40")

    # sending none is refused by the schema (minItems): the field is marked
    await first.get_by_role("button", name="Send answer").click()
    await expect(question.locator(".field[data-field='picks']")).to_have_class(
        re.compile(r"\binvalid\b")
    )
    await first.mouse.move(0, 0)
    await question.screenshot(path=str(SCREENSHOTS / "lead-scrape-question.png"))

    # the second tab opens the job and answers: three with a website, one without
    second = await new_page(context, console)
    await open_home(second, examples.base_url, f"/jobs/{job_id}")
    with_site = [r for r in RESTAURANTS if r["website"]][:3]
    picks = [*with_site, next(r for r in RESTAURANTS if not r["website"])]
    answer_form = second.locator("#job-input")
    for r in picks:
        await answer_form.get_by_label(re.compile("^" + re.escape(r["name"]) + " ·")).check()
    await expect(answer_form.locator(".choice-count")).to_have_text("4 of 40 selected")
    await second.get_by_role("button", name="Send answer").click()

    for page in (first, second):
        await expect(page.locator("#job-input")).to_be_hidden(timeout=10_000)
        added = page.locator("#steps li[data-parent='enrich']")
        await expect(added).to_have_count(4, timeout=15_000)
    running = first.locator("#steps li[data-parent='enrich'][data-state='running'] .step-counters")
    await expect(running).to_have_text(re.compile(r"^\d / 3$"), timeout=15_000)
    for page in (first, second):
        await expect(page.locator("#job-status")).to_have_text("completed", timeout=30_000)
        failed = page.locator("#steps li[data-parent='enrich'][data-state='failed']")
        await expect(failed).to_have_count(1)
        await expect(failed.locator(".step-error")).to_contain_text("lists no website")
        counters = page.locator("#steps li[data-parent='enrich'] .step-counters")
        assert sorted(await counters.all_text_contents()) == ["0 / 3", "3 / 3", "3 / 3", "3 / 3"]
        await expect(page.locator("#result-summary")).to_contain_text(
            "3 of 4 leads enriched, 1 failed"
        )
    await shot(first, artifacts, "lead-scrape-done", full_page=True)
    assert console.errors == []


async def test_company_analysis_resumes_at_the_rate_limited_step_and_can_be_cancelled(
    examples: Stack, context: BrowserContext
) -> None:
    console = Console()
    page = await new_page(context, console)
    await open_home(page, examples.base_url)
    with load_example("company_analysis").FakeUpstream() as upstream:
        await start_type(
            page,
            "company_analysis",
            {"company": "Acme", "upstream_url": upstream.url, "step_s": "0.4"},
        )
        await expect(page.locator("#job-attempt")).to_have_text("Attempt 2 of 3", timeout=20_000)
        # the retry skipped the three paid steps done before the 429
        skipped = page.locator("#steps li .step-skipped")
        await expect(skipped).to_have_count(3, timeout=15_000)
        await expect(page.locator("#job-status")).to_have_text("completed", timeout=30_000)
        await expect(page.locator("#result-summary")).to_contain_text(
            "Acme: $310M revenue, 3 headlines, 3 competitors"
        )
        assert dict(upstream.calls) == {
            "profile": 1,
            "financials": 1,
            "news": 1,
            "competitors": 2,
        }

        # a slow one, cancelled from its page
        await start_type(
            page,
            "company_analysis",
            {"company": "Acme", "upstream_url": upstream.url, "step_s": "20"},
        )
        await expect(page.locator("#job-message")).to_contain_text(
            "Reading profile", timeout=15_000
        )
        await page.locator("#job-view").get_by_role("button", name="Cancel job").click()
        await page.locator("#cancel-dialog").get_by_role("button", name="Cancel job").click()
        await expect(page.locator("#job-status")).to_have_text("cancelled", timeout=15_000)
    assert console.errors == []
