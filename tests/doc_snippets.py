"""The fenced code blocks of README.md and docs/*.md, and what each one claims to be.

A block is run as it stands (``sh``, ``python``) or parsed (``json``) by
tests/integration/test_doc_snippets.py, unless the line before it says otherwise
with a marker, whose claim the test checks in turn:

- ``<!-- snippet: lines of PATH -->``: every line of the block is a line of that file
  (a piece of an example the suite runs whole, or the Procfile);
- ``<!-- snippet: run by PATH -->``: that test runs it (the file names this page);
- ``<!-- snippet: settings -->``: ``KEY=value`` lines, read by jobcast's settings;
- ``<!-- snippet: output -->``: what a call answers (JSON), or a picture (no language);
- ``<!-- snippet: needs systemd -->`` / ``needs podman``: true only where the tool is
  missing here (once it is present, the test asks that the block be run);
- ``<!-- snippet: step of the next -->``: a part of the block that follows it, shown
  first (job-types.md's sections build up the module one part at a time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from jobcast.settings import ROOT

PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
_FENCE = re.compile(r"^( *)```(\w*)\s*$")
_MARKER = re.compile(r"^\s*<!-- snippet: (.+?) -->\s*$")


@dataclass(frozen=True)
class Snippet:
    page: Path
    line: int  # of the opening fence, from 1
    lang: str
    code: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def snippets(page: Path) -> list[Snippet]:
    lines = page.read_text().split("\n")
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, lang = len(opening.group(1)), opening.group(2)
        end = i + 1
        while not lines[end].strip().startswith("```"):
            end += 1
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(before)
        found.append(Snippet(page, i + 1, lang, code, marker.group(1) if marker else None))
        i = end + 1
    return found


def every_snippet() -> list[Snippet]:
    return [s for page in PAGES for s in snippets(page)]
