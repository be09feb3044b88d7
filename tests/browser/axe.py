"""axe-core in the browser tests: fetched from npm once, injected into a page, run.

The package comes from npm (``npm pack``) into the git-ignored ``.jobcast/axe-core/``
the first time a test needs it, as chromium is installed by the test setup; where npm
is missing or cannot reach the registry the test is skipped and says so. Pages send a
CSP that refuses inline scripts: contexts for axe are opened with ``bypass_csp``.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tarfile
from typing import Any

import pytest
from playwright.async_api import Page

from jobcast.settings import ROOT

AXE_VERSION = "4.10.2"
AXE_DIR = ROOT / ".jobcast" / "axe-core"
AXE_JS = AXE_DIR / AXE_VERSION / "axe.min.js"

# what a page must pass: WCAG 2.1 A and AA, and axe's best practices
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def axe_source() -> str:
    """The text of axe.min.js, packed from npm the first time (by one process at a time:
    the suite's parallel workers wait on a lock while one of them packs it)."""
    if not AXE_JS.exists():
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        with open(AXE_DIR / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not AXE_JS.exists():
                _pack()
    return AXE_JS.read_text()


def _pack() -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("axe-core needs npm to fetch it (apt-get install npm); not found")
    done = subprocess.run(
        [npm, "pack", f"axe-core@{AXE_VERSION}", "--pack-destination", str(AXE_DIR)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    tarball = AXE_DIR / f"axe-core-{AXE_VERSION}.tgz"
    if done.returncode != 0 or not tarball.exists():
        pytest.skip(f"npm pack axe-core@{AXE_VERSION} failed: {done.stderr.strip()[-500:]}")
    with tarfile.open(tarball) as packed:
        member = packed.extractfile("package/axe.min.js")
        assert member is not None
        AXE_JS.parent.mkdir(parents=True, exist_ok=True)
        partial = AXE_JS.with_suffix(".part")  # renamed whole: a reader never sees half
        partial.write_bytes(member.read())
        partial.replace(AXE_JS)


async def violations(page: Page, *, include: list[str] | None = None) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now (or within the ``include`` selectors):
    rule, impact and the nodes' selectors."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.add_script_tag(content=axe_source())
    found: list[dict[str, Any]] = await page.evaluate(
        """async ([tags, include]) => {
            const context = include.length ? { include: include.map((s) => [s]) } : document;
            const result = await axe.run(context, {
                runOnly: { type: "tag", values: tags }, resultTypes: ["violations"],
                // experimental in axe, and named by the issue: a label that hides the text
                rules: { "label-content-name-mismatch": { enabled: true } },
            });
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map((n) => n.target.join(" ")),
            }));
        }""",
        [TAGS, include or []],
    )
    return found


def summary(found: list[dict[str, Any]]) -> str:
    """One line per rule: its id, impact, and the first nodes it names."""
    return "\n".join(
        f"{v['id']} ({v['impact']}, {len(v['nodes'])}): {', '.join(v['nodes'][:4])}" for v in found
    )
