"""The link `jobcast submit` prints, opened in a browser that has never seen jobcast.

Acting with an app key, the CLI puts a read-only browser token for the job in the
link's fragment: Chromium, with no cookie and no session, opens the job's page on it
and shows the job; the token leaves the address bar, and no session is made.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from playwright.async_api import BrowserContext, expect

from jobcast.settings import ROOT
from jobcast.store import Store
from tests.support import Stack

pytestmark = [pytest.mark.browser]


async def test_the_printed_link_opens_the_job_in_a_fresh_browser(
    stack: Stack, context: BrowserContext, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with Store.open(stack.database_url, max_size=1) as store:
        key = await store.create_app_key("cli-link")
    env = {k: v for k, v in stack.env.items() if not k.startswith("JOBCAST_")}
    env.update(
        JOBCAST_URL=stack.base_url,
        JOBCAST_TOKEN=key.bearer,
        XDG_CONFIG_HOME=str(tmp_path_factory.mktemp("config")),
    )
    submitted = subprocess.run(
        [sys.executable, "-m", "jobcast.cli", "submit", "demo", "-i", '{"duration": 0.5}', "-w"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert submitted.returncode == 0, submitted.stderr
    found = re.search(r"its page: (\S+#token=\S+)", submitted.stderr)
    assert found, submitted.stderr
    link = found.group(1)
    job_id = link.split("#", 1)[0].rsplit("/", 1)[1]

    page = await context.new_page()
    sessions: list[str] = []
    page.on("request", lambda r: sessions.append(r.url) if "/api/sessions" in r.url else None)
    await page.goto(link)
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=20_000)
    await expect(page.locator("#result-summary")).to_contain_text("Demo finished")
    assert page.url == f"{stack.base_url}/jobs/{job_id}"  # the token left the address bar
    assert sessions == [] and await context.cookies() == []
