"""axe-core over the page's states, at a phone's width and a desktop's, light and dark.

Every state must be free of violations: the home page, a running, completed, failed,
cancelled, paused, draft and waiting (needs your input) job, the cancel dialog, a toast,
My jobs with jobs in it, the operator console signed in, and the embed demo page with its
``<job-progress>``. What axe finds is written to test-artifacts/axe.txt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.async_api import Page, ViewportSize, expect

from jobcast.endpoints import Endpoints
from tests.browser.axe import summary, violations
from tests.browser.conftest import NewContext
from tests.browser.pages import open_home
from tests.conftest import DatabaseFactory
from tests.support import Stack, launch

pytestmark = pytest.mark.browser

ADMIN = "axe-admin-" + "a" * 30
WIDTHS: dict[str, ViewportSize] = {
    "phone": {"width": 390, "height": 844},
    "desktop": {"width": 1280, "height": 800},
}
SCHEMES: tuple[Literal["light"], Literal["dark"]] = ("light", "dark")
# the demo's input for each job state, and the status its page waits for
JOBS: dict[str, tuple[dict[str, Any], str]] = {
    "running": ({"duration": 60}, "running"),
    "completed": ({"duration": 0.4}, "completed"),
    "failed": ({"duration": 0.4, "fail_step": "analyze"}, "failed"),
    "cancelled": ({"duration": 60}, "cancelled"),
    "dialog": ({"duration": 60}, "running"),
    "paused": ({"duration": 60}, "paused"),
    "input": ({"duration": 1, "ask": True}, "waiting"),
    "draft": ({"duration": 1}, "draft"),
}
# no CSS transition running (a spinner's endless animation is not one)
TRANSITIONS_DONE = """() => document.getAnimations().every(
    (a) => !(a instanceof CSSTransition) || a.playState !== "running")"""
STATES = ("home", "listed", "toast", "embed", "admin", *JOBS)


@pytest.fixture(scope="module")
async def stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """The usual stack, with an admin token for the console."""
    running = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("axe-stack"),
        JOBCAST_ADMIN_TOKEN=ADMIN,
    )
    try:
        yield running
    finally:
        running.close()


async def submit(page: Page, job_input: dict[str, Any], draft: bool = False) -> str:
    """A demo job submitted from the page (so it is the page's visitor's); its id."""
    job_id: str = await page.evaluate(
        """async ([input, draft]) => {
            const r = await fetch("/api/jobs", {method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({type: "demo", input, draft})});
            return (await r.json()).id;
        }""",
        [job_input, draft],
    )
    return job_id


async def job_page(page: Page, base_url: str, state: str) -> None:
    """A demo job in ``state``, its page open (the cancel dialog open for "dialog")."""
    await open_home(page, base_url)
    job_input, status = JOBS[state]
    job_id = await submit(page, job_input, draft=state == "draft")
    await open_home(page, base_url, f"/jobs/{job_id}")
    badge = page.locator("#job-status")
    if state in ("cancelled", "dialog", "paused"):
        await expect(badge).to_have_text("running", timeout=20_000)
    if state == "cancelled":
        await page.evaluate("(id) => fetch(`/api/jobs/${id}/cancel`, {method: 'POST'})", job_id)
    if state == "paused":
        await page.get_by_role("button", name="Pause").click()
    await expect(badge).to_have_text(status, timeout=20_000)
    if state == "input":
        await expect(page.locator("#job-input")).to_be_visible()
    if state == "draft":
        await expect(page.locator("#job-draft input[name=duration]")).to_have_value("1")
    if state == "dialog":
        await page.locator("#cancel-button").click()
        await expect(page.locator("#cancel-dialog")).to_be_visible()


async def listed(page: Page, base_url: str) -> None:
    """The home page with finished and running jobs in My jobs."""
    for state in ("completed", "failed", "running"):
        await job_page(page, base_url, state)
    await open_home(page, base_url)


async def toast(page: Page, base_url: str) -> None:
    """The home page, a toast for a job of the visitor's that ended meanwhile, hovered
    (so it stays)."""
    await open_home(page, base_url)
    await submit(page, {"duration": 0.3})
    shown = page.locator("#toasts .toast")
    await expect(shown).to_be_visible(timeout=20_000)
    await shown.hover()


async def admin(page: Page, base_url: str) -> None:
    """The operator console signed in, with a finished and a failed job in its tables."""
    await open_home(page, base_url)
    for job_input in ({"duration": 0.2}, {"duration": 0.2, "fail_step": "fetch"}):
        await submit(page, job_input)
    await page.goto(base_url + "/admin")
    await page.get_by_label("Admin token").fill(ADMIN)
    await page.get_by_role("button", name="Show dashboard").click()
    await expect(page.locator("#dashboard")).to_be_visible()
    await expect(page.locator("#dashboard table tbody tr").first).to_be_visible(timeout=20_000)


@pytest.mark.parametrize("state", STATES)
async def test_axe_finds_no_violation(
    stack: Stack, new_context: NewContext, artifacts: str, state: str
) -> None:
    """Each state is made once, then checked at both widths in both schemes: the page
    lays itself out again for each (CSS media queries), as a turned phone or a window
    resized does."""
    context = await new_context(
        viewport=WIDTHS["desktop"], bypass_csp=True, reduced_motion="reduce"
    )
    page = await context.new_page()
    if state == "home":
        await open_home(page, stack.base_url)
    elif state == "listed":
        await listed(page, stack.base_url)
    elif state == "toast":
        await toast(page, stack.base_url)
    elif state == "admin":
        await admin(page, stack.base_url)
    elif state == "embed":  # the demo page, its <job-progress> run to the end
        await page.goto(f"{stack.base_url}/static/embed-demo.html")
        await page.get_by_role("button", name="Start a demo job").click()
        done = page.locator("job-progress .jp[data-status=completed]")
        await expect(done).to_be_visible(timeout=30_000)
    else:
        await job_page(page, stack.base_url, state)
    failures: list[str] = []
    for width, size in WIDTHS.items():
        await page.set_viewport_size(size)
        for scheme in SCHEMES:
            await page.emulate_media(color_scheme=scheme)
            if state == "toast":  # hovered again where the new layout put it, so it stays
                await page.locator("#toasts .toast").hover()
            else:
                await page.mouse.move(0, 0)
            # the colours' transitions to the new scheme, run out (axe reads colours as drawn)
            await page.wait_for_function(TRANSITIONS_DONE)
            found: list[dict[str, Any]] = await violations(page)
            with (Path(artifacts) / "axe.txt").open("a") as out:
                out.write(f"== {state} {width} {scheme}: {len(found)} rules\n{summary(found)}\n")
            if found:
                failures.append(f"{width} {scheme}:\n{summary(found)}")
    assert failures == [], "\n".join(failures)
