"""The named statements of jobcast/queries.sql: each documented, each used, none missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobcast.sql import DOCS, NOTIFY_CHANNEL, QUERIES, parse

ROOT = Path(__file__).resolve().parents[2]
_PARAM = re.compile(r"\$(\d+)")


def _used_names() -> set[str]:
    """Every QUERIES["..."] the product's code runs."""
    names: set[str] = set()
    for package in ("jobcast", "server", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(re.findall(r'QUERIES\["([a-z_]+)"\]', path.read_text()))
            # a state change is named by its statement (Attempts._change)
            names |= set(re.findall(r'self\._change\(\s*"([a-z_]+)"', path.read_text()))
    return names


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_each_statement_says_its_parameters(name: str) -> None:
    used = {int(n) for n in _PARAM.findall(QUERIES[name])}
    said = {int(n) for n in _PARAM.findall(DOCS[name])}
    assert DOCS[name], f"{name}: no comment says what it does"
    assert used == said, f"{name}: uses ${sorted(used)}, its comment names ${sorted(said)}"
    assert used == set(range(1, len(used) + 1)), f"{name}: parameters not $1..$n: {used}"


def test_every_statement_is_run_and_every_name_run_exists() -> None:
    used = _used_names()
    assert used - set(QUERIES) == set(), "code runs statements queries.sql does not have"
    assert set(QUERIES) - used == set(), "queries.sql has statements nothing runs"


def test_every_notify_goes_to_the_fallback_channel() -> None:
    for name, text in QUERIES.items():
        for channel in re.findall(r"pg_notify\('([^']*)'", text):
            assert channel == NOTIFY_CHANNEL, name


def test_a_statement_is_its_parts_without_comments() -> None:
    statements, docs = parse(
        "-- part: tail\n-- the end\nFROM t\n\n-- name: one\n-- $1 id\nSELECT $1\n"
        "-- include: tail\n\n-- a section title\n"
    )
    assert statements == {"one": "SELECT $1\nFROM t"}
    assert docs == {"one": "$1 id"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n", "defined twice"),
        ("-- name: a\nSELECT\n-- include: nope\n", "unknown part"),
        ("-- part: p\nx\n-- include: p\n-- name: a\n-- include: p\n", "includes itself"),
    ],
)
def test_a_broken_file_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse(text)
