"""Every SQL statement of jobcast, read once from ``jobcast/queries.sql``.

The file is a list of named blocks: ``-- name: x`` starts a statement, ``-- part: x``
a piece statements share, and a statement's line ``-- include: x`` is replaced by
that part. The comment lines under a header say what the statement does and its
parameters in order; they are kept in ``DOCS`` (a test checks them against the
``$n`` each statement uses) and not sent to Postgres. Statements are fixed text:
nothing from Python is ever pasted into them.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

# the fallback channel every state change NOTIFYs (queries.sql spells it out)
NOTIFY_CHANNEL = "jobcast_events"

QUERIES_PATH = Path(__file__).with_name("queries.sql")

_HEADER = re.compile(r"^-- (name|part): ([a-z_]+)\s*$")
_INCLUDE = re.compile(r"^-- include: ([a-z_]+)\s*$")


class Block:
    """One named block of the file: its comment lines and its SQL lines."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        self.lines: list[str] = []

    def split(self) -> tuple[str, list[str]]:
        """The block's leading comment (its doc) and its body, with trailing comments and
        blank lines (a section title before the next block) left off."""
        lines = list(self.lines)
        doc: list[str] = []
        while lines and lines[0].startswith("--") and not _INCLUDE.match(lines[0]):
            doc.append(lines.pop(0)[2:].strip())
        while lines and (not lines[-1].strip() or _is_comment(lines[-1])):
            lines.pop()
        return " ".join(doc), lines


def _is_comment(line: str) -> bool:
    return line.startswith("--") and not _INCLUDE.match(line)


def parse(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """The statements of a queries file by name, and their docs by name."""
    blocks: list[Block] = []
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            blocks.append(Block(header[1], header[2]))
        elif blocks:
            blocks[-1].lines.append(line)
    parts: dict[str, list[str]] = {}
    statements: dict[str, list[str]] = {}
    docs: dict[str, str] = {}
    for block in blocks:
        if block.name in parts or block.name in statements:
            raise ValueError(f"queries.sql: {block.name!r} is defined twice")
        doc, body = block.split()
        (parts if block.kind == "part" else statements)[block.name] = body
        if block.kind == "name":
            docs[block.name] = doc

    def resolve(lines: list[str], seen: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        for line in lines:
            include = _INCLUDE.match(line)
            if include is None:
                out.append(line)
                continue
            part = include[1]
            if part not in parts:
                raise ValueError(f"queries.sql: {seen[-1]!r} includes unknown part {part!r}")
            if part in seen:
                raise ValueError(f"queries.sql: part {part!r} includes itself")
            out.extend(resolve(parts[part], (*seen, part)))
        return out

    return {name: "\n".join(resolve(body, (name,))) for name, body in statements.items()}, docs


_statements, _docs = parse(QUERIES_PATH.read_text())
QUERIES = MappingProxyType(_statements)
DOCS = MappingProxyType(_docs)
