"""static/jobcast.d.ts, written by hand, keeps up with the library it types: every export
of the ES module, every call of a client and every attribute of the elements is declared."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "static"


def declared() -> str:
    return (STATIC / "jobcast.d.ts").read_text()


def module_exports() -> set[str]:
    """The names jobcast.mjs exports besides its default."""
    text = (STATIC / "jobcast.mjs").read_text()
    block = re.search(r"export const \{(.*?)\} = jobcast;", text, re.S)
    assert block, "jobcast.mjs no longer exports `const {...} = jobcast`"
    return {name.strip() for name in block[1].split(",") if name.strip()}


def client_calls() -> set[str]:
    """The keys of the object makeClient returns (the API of a client)."""
    text = (STATIC / "jobcast.js").read_text()
    block = re.search(r"return \{\n      server: base,(.*?)\n    \};", text, re.S)
    assert block, "jobcast.js: makeClient's returned object was not found"
    return set(re.findall(r"^\s{6}(?:get )?(\w+)[:(]", block[1], re.M)) - {"_fetch"}


def interface(name: str) -> str:
    found = re.search(r"export interface " + name + r"\b[^{]*\{(.*?)\n\}", declared(), re.S)
    assert found, f"jobcast.d.ts declares no interface {name}"
    return found[1]


def test_every_export_of_the_module_is_declared() -> None:
    text = declared()
    missing = {
        name
        for name in module_exports()
        if not re.search(rf"export declare (?:const|class) {name}\b", text)
    }
    assert missing == set()


def test_every_call_of_a_client_is_declared() -> None:
    members = set(re.findall(r"^\s+(?:readonly )?(\w+)[?(:]", interface("Client"), re.M))
    assert client_calls() - members == set()


def test_every_attribute_of_the_elements_is_documented_in_the_types() -> None:
    text = (STATIC / "jobcast.js").read_text()
    observed = re.findall(r"return \[(\"[^\]]+\")\];", text)
    attributes = {a.strip().strip('"') for group in observed for a in group.split(",")}
    assert {"job-id", "batch-id", "token", "tag"} <= attributes
    comments = re.findall(r"/\*\*[^*]*<(job-progress|job-toasts) ([^>]*)>", declared())
    said = " ".join(attrs for _element, attrs in comments)
    assert {a for a in attributes if a not in said} == set(), said
