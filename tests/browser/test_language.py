"""The page in the visitor's language: a German browser sees German in every state it
reaches, a key the German catalogue lacks falls back to English, an app's own strings
win, numbers and dates are written the German way, and the switch changes the language
for good."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import NewContext
from tests.browser.pages import DESKTOP, Console, new_page, open_home
from tests.support import Stack

pytestmark = pytest.mark.browser

# What the job itself wrote (its messages, result, error, ids) is the job's, not the page's.
JOB_TEXT = (
    "#job-message, .result-line, #result-fields, #result-json, #job-error-message, "
    ".job-id, .job-row-id, .toast-detail, #stream-list"
)
# English words that would give away an untranslated string the catalogue does not hold
FUNCTION_WORDS = ["the", "and", "of", "to", "is", "your", "this", "for", "with", "not", "it"]

# The English words on the page now: words of the English catalogue that the German one
# does not use, and English function words, found in the page's visible text and title.
ENGLISH_LEFT = """
([skip, extra]) => {
  const words = (text) => (String(text).toLowerCase().match(/[a-zäöüß']{3,}/g) || []);
  const values = (cat) =>
    Object.values(cat).flatMap((v) => typeof v === "object" ? Object.values(v) : [v]);
  const german = new Set(values(window.jobcastStrings.de).flatMap(words));
  const english = new Set(
    values(window.jobcastStrings.en).flatMap(words).filter((w) => !german.has(w)));
  for (const w of extra) english.add(w);
  let text = document.body.innerText + "\\n" + document.title;
  for (const node of document.querySelectorAll(skip)) {
    const own = node.innerText;
    if (own) text = text.split(own).join(" ");
  }
  const found = new Set();
  for (const w of text.toLowerCase().match(/[a-zäöüß']+/g) || []) if (english.has(w)) found.add(w);
  return { found: [...found], text };
}
"""


async def english_left(page: Page) -> list[str]:
    """English words in what the page shows (the job's own words left out)."""
    seen = await page.evaluate(ENGLISH_LEFT, [JOB_TEXT, FUNCTION_WORDS])
    text = seen["text"]
    around = [
        f"{w!r} in ...{text[max(0, text.lower().find(w) - 60) :][:120]!r}" for w in seen["found"]
    ]
    return around


async def german_page(new_context: NewContext) -> Page:
    context = await new_context(viewport=DESKTOP, locale="de-DE")
    return await context.new_page()


async def test_a_german_browser_sees_german_in_every_state(
    stack: Stack, new_context: NewContext
) -> None:
    console = Console()
    context = await new_context(viewport=DESKTOP, locale="de-DE")
    page = await new_page(context, console)
    await open_home(page, stack.base_url)
    await expect(page.locator("html")).to_have_attribute("lang", "de")
    await expect(page.locator("#new-job-title")).to_have_text("Neuer Job")
    assert await english_left(page) == []

    # a running job, its cancel dialog, then cancelled
    await page.locator("#job-form input[name=duration]").fill("60")
    await page.get_by_role("button", name="Starten", exact=True).click()
    await expect(page.locator("#job-status")).to_have_text("läuft", timeout=20_000)
    await expect(page.locator("#job-eta")).to_have_text(re.compile(r"^noch etwa \d+ (s|min)$"))
    assert await english_left(page) == []
    await page.get_by_role("button", name="Job abbrechen").click()
    await expect(page.locator("#cancel-dialog")).to_be_visible()
    assert await english_left(page) == []
    await page.locator("#cancel-dialog").get_by_role("button", name="Job abbrechen").click()
    await expect(page.locator("#job-status")).to_have_text("abgebrochen", timeout=20_000)
    assert await english_left(page) == []

    # a job that fails, then one that completes: their pages, the toast, My jobs
    await page.locator("#job-form input[name=duration]").fill("0.5")
    await page.get_by_text("Weitere Optionen").click()
    await page.select_option("#job-form select[name=fail_step]", "analyze")
    await page.get_by_role("button", name="Starten", exact=True).click()
    await expect(page.locator("#job-status")).to_have_text("fehlgeschlagen", timeout=20_000)
    await expect(page.locator("#job-error-meta")).to_contain_text("dauerhafter Fehler")
    assert await english_left(page) == []
    await page.select_option("#job-form select[name=fail_step]", "")
    await page.locator("#job-form input[name=duration]").fill("2")
    await page.get_by_role("button", name="Starten", exact=True).click()
    await expect(page.locator("#job-status")).to_have_text("fertig", timeout=20_000)
    # another job of the visitor's ends meanwhile: a toast says which and how
    await page.evaluate(
        """() => fetch("/api/jobs", {method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify({type: "demo", input: {duration: 0.3}})})"""
    )
    toast = page.locator("#toasts .toast", has_text=re.compile(r"Demo [0-9a-f]{8} ist fertig"))
    await expect(toast).to_be_visible(timeout=20_000)
    await toast.hover()
    # a German decimal comma in the time it took
    await expect(page.locator("#result-summary strong")).to_have_text(
        re.compile(r"^Fertig nach \d,\d s$")
    )
    await expect(page.locator("#job-list li")).to_have_count(4)
    assert await english_left(page) == []
    assert console.errors == []


async def test_a_key_german_lacks_is_english_and_an_app_overrides(
    stack: Stack, new_context: NewContext
) -> None:
    page = await german_page(new_context)
    await open_home(page, stack.base_url)
    said = await page.evaluate(
        """() => {
            const i18n = window.jobcast.i18n;
            delete window.jobcastStrings.de["list.refresh"];
            const fallback = jobcast.t("list.refresh");
            const unknown = jobcast.t("no.such.key");
            i18n.add("de", { "list.title": "Meine Aufträge" });
            return {
                fallback, unknown, own: jobcast.t("list.title"), lang: i18n.lang,
                duration: i18n.duration(5100),
                plural: [1, 3].map((count) => jobcast.t("error.attempts", {count})),
                date: i18n.date("2026-12-01T19:57:19Z", {dateStyle: "medium", timeZone: "UTC"}),
            };
        }"""
    )
    assert said == {
        "fallback": "Refresh",
        "unknown": "no.such.key",
        "own": "Meine Aufträge",
        "lang": "de",
        "duration": "5,1 s",
        "plural": ["nach 1 Versuch", "nach 3 Versuchen"],
        "date": "01.12.2026",
    }


async def test_the_switch_changes_the_language_for_good(
    stack: Stack, new_context: NewContext
) -> None:
    page = await german_page(new_context)
    await open_home(page, stack.base_url)
    switch = page.get_by_role("combobox", name="Sprache")
    await switch.select_option("en")
    await expect(page.locator("html")).to_have_attribute("lang", "en", timeout=10_000)
    await expect(page.locator("html")).to_have_attribute("data-ready", "true")
    await expect(page.locator("#new-job-title")).to_have_text("New job")
    assert await page.evaluate("() => window.jobcast.i18n.duration(5100)") == "5.1 s"
    await open_home(page, stack.base_url)
    await expect(page.locator("#my-jobs-title")).to_have_text("My jobs")
    # ?lang= asks for one page in a language, whatever was chosen before
    await open_home(page, stack.base_url, "/?lang=de")
    await expect(page.locator("#my-jobs-title")).to_have_text("Meine Jobs")
