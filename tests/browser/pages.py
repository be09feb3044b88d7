"""What the browser tests share: console watching, recorders injected into pages, page actions."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, ConsoleMessage, Page, ViewportSize, expect

# Chromium logs refused requests by itself (the first visit's 401 before a session exists,
# a websocket to a stopped server): those are the network's doing, not the page's.
_NETWORK_NOISE = re.compile(r"Failed to load resource|WebSocket connection|ERR_CONNECTION_REFUSED")

DESKTOP: ViewportSize = {"width": 1100, "height": 800}
PHONE: ViewportSize = {"width": 375, "height": 812}

# Records every value the progress bar and the step indicators take, in order, by
# watching the DOM: a sample taken now and then could miss a step going backwards.
RECORDER = """
(() => {
  const rec = { progress: [], steps: {} };
  window.__rec = rec;
  const push = (step, state) => {
    const list = rec.steps[step] || (rec.steps[step] = []);
    if (list[list.length - 1] !== state) list.push(state);
  };
  const observer = new MutationObserver((records) => {
    const byTarget = new Map();
    for (const r of records) {
      if (r.type === "childList") {
        for (const n of r.addedNodes) {
          if (n.nodeType === 1 && n.matches("#steps li")) push(n.dataset.step, n.dataset.state);
        }
        continue;
      }
      if (!byTarget.has(r.target)) byTarget.set(r.target, []);
      byTarget.get(r.target).push(r);
    }
    for (const [target, list] of byTarget) {
      list.forEach((r, i) => {
        // a record holds the value before it: the next record's old value is this one's new one
        const name = r.attributeName;
        const value = i + 1 < list.length ? list[i + 1].oldValue : target.getAttribute(name);
        if (name === "aria-valuenow" && target.id === "progress") rec.progress.push(Number(value));
        if (name === "data-state" && target.matches("#steps li")) push(target.dataset.step, value);
      });
    }
  });
  observer.observe(document, {
    subtree: true, childList: true, attributes: true, attributeOldValue: true,
    attributeFilter: ["aria-valuenow", "data-state"],
  });
})();
"""

# Keeps every WebSocket the page opens, so a test can drop them as a network would.
SOCKET_TAP = """
(() => {
  const Native = window.WebSocket;
  const open = [];
  window.__sockets = { urls: [], open };
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      window.__sockets.urls.push(String(url));
      open.push(this);
      this.addEventListener("close", () => open.splice(open.indexOf(this), 1));
    }
  };
  window.__dropJobSockets = () => {
    let n = 0;
    for (const s of open.slice()) {
      if (s.url.includes("/ws/jobs/")) { s.close(3000, "dropped by the test"); n += 1; }
    }
    return n;
  };
})();
"""

# A stand-in for the Notification API: headless Chromium shows nothing, this records.
FAKE_NOTIFICATIONS = """
(() => {
  window.__notes = [];
  class FakeNotification {
    constructor(title, options) { window.__notes.push({ title, body: (options || {}).body }); }
    close() {}
    static requestPermission() {
      FakeNotification.permission = "granted";
      return Promise.resolve("granted");
    }
  }
  FakeNotification.permission = "default";
  window.Notification = FakeNotification;
})();
"""

HIDE_TAB = """
() => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
  Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
  document.dispatchEvent(new Event("visibilitychange"));
}
"""

SHOW_TAB = """
() => {
  delete document.visibilityState;
  delete document.hidden;
  document.dispatchEvent(new Event("visibilitychange"));
}
"""


@dataclass
class Console:
    """Errors the page logged or threw; network refusals are left out."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not _NETWORK_NOISE.search(message.text):
            self.errors.append(message.text)


async def new_page(context: BrowserContext, console: Console) -> Page:
    return console.watch(await context.new_page())


async def open_home(page: Page, base_url: str, path: str = "/") -> None:
    await page.goto(base_url + path)
    await expect(page.locator("html")).to_have_attribute("data-ready", "true", timeout=15_000)


async def start_demo(
    page: Page, duration: float, *, fail_step: str | None = None, flaky: int | None = None
) -> str:
    """Fill the form for a demo job, press Start, and return the new job's id."""
    await page.select_option("select[name=type]", "demo")
    await page.fill("input[name=duration]", str(duration))
    if fail_step is not None or flaky is not None:
        await page.get_by_text("More options").click()
        if fail_step is not None:
            await page.select_option("select[name=fail_step]", fail_step)
        if flaky is not None:
            await page.fill("input[name=flaky]", str(flaky))
    before = page.url
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page).not_to_have_url(before, timeout=10_000)
    match = re.search(r"/jobs/([0-9a-f-]{36})$", page.url)
    assert match, page.url
    return match.group(1)


async def recorded(page: Page) -> dict[str, Any]:
    rec: dict[str, Any] = await page.evaluate("() => window.__rec")
    return rec


def assert_never_decreases(values: list[float], what: str = "progress") -> None:
    for earlier, later in itertools.pairwise(values):
        assert later >= earlier, f"{what} went back from {earlier} to {later}: {values}"


async def shot(page: Page, artifacts: str, name: str, *, full_page: bool = False) -> None:
    """A screenshot of the page at rest: no hover, transitions run to their end."""
    await page.mouse.move(0, 0)
    await page.screenshot(
        path=str(Path(artifacts) / f"{name}.png"), animations="disabled", full_page=full_page
    )
