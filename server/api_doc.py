"""docs/api.md's reference tables, written from the OpenAPI document.

The page's prose is written by hand; its tables of calls and of fields are not.
Each table sits between two markers::

    <!-- api_doc: calls -->             every HTTP call of the OpenAPI document
    <!-- api_doc: model JobOut -->      the fields of one of its models
    <!-- api_doc: models -->            every other model, each under its name
    ...
    <!-- /api_doc -->

and ``python -m server.api_doc`` rewrites what is between them from the same route
table and pydantic models that ``GET /openapi.json`` is built from, so the page
cannot name a field the API does not give, or miss one it does
(tests/unit/test_api_doc.py checks the committed page is what this writes).
``--check`` exits 1 when the page differs instead of writing it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from jobcast.settings import ROOT

DOC = ROOT / "docs" / "api.md"
_BLOCK = re.compile(r"(<!-- api_doc: ([^>]*?) -->\n)(.*?)(<!-- /api_doc -->)", re.S)


def document() -> dict[str, Any]:
    from server.app import routes
    from server.openapi import build

    return build(routes(), title="jobcast", version="doc")


def type_of(schema: dict[str, Any]) -> str:
    """A field's JSON type in a few characters: ``string``, ``integer | null``, ``[JobOut]``."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(type_of(option) for option in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(f'"{value}"' for value in schema["enum"])
    if "const" in schema:
        return f'"{schema["const"]}"'
    kind = schema.get("type", "any")
    if kind == "array":
        return f"[{type_of(schema.get('items', {}))}]"
    if kind == "object" and "additionalProperties" in schema:
        values = schema["additionalProperties"]
        return "object" if values is True else f"{{string: {type_of(values)}}}"
    if kind == "string" and "format" in schema:
        return f"string ({schema['format']})"
    return str(kind)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def model_table(doc: dict[str, Any], name: str) -> str:
    schemas = doc["components"]["schemas"]
    if name not in schemas:
        raise SystemExit(f"docs/api.md names model {name!r}, which the API does not have")
    schema = schemas[name]
    if name not in bodies(doc):  # an answer: every field is always there, maybe null
        lines = ["| field | type | what |", "|---|---|---|"]
        for field, spec in schema.get("properties", {}).items():
            lines.append(
                f"| `{field}` | {_cell(type_of(spec))} | {_cell(spec.get('description', ''))} |"
            )
        return "\n".join(lines) + "\n"
    required = set(schema.get("required", ()))
    lines = ["| field | type | required | what |", "|---|---|---|---|"]
    for field, spec in schema.get("properties", {}).items():
        need = "yes" if field in required else ""
        lines.append(f"| `{field}` | {_cell(type_of(spec))} | {need} | {_cell(_about(spec))} |")
    return "\n".join(lines) + "\n"


def _about(spec: dict[str, Any]) -> str:
    about = str(spec.get("description", ""))
    if "default" in spec and spec["default"] is not None:
        about = f"{about} Default {json.dumps(spec['default'])}.".strip()
    return about


def bodies(doc: dict[str, Any]) -> set[str]:
    """The models clients send: request bodies and the models they hold."""
    schemas = doc["components"]["schemas"]
    found: set[str] = set()
    todo = [
        type_of(op["requestBody"]["content"]["application/json"]["schema"])
        for methods in doc["paths"].values()
        for op in methods.values()
        if "requestBody" in op
    ]
    while todo:
        name = todo.pop()
        if name in found or name not in schemas:
            continue
        found.add(name)
        todo += re.findall(r"#/components/schemas/(\w+)", json.dumps(schemas[name]))
    return found


def models_tables(doc: dict[str, Any], tabled: set[str]) -> str:
    parts = []
    for name, schema in sorted(doc["components"]["schemas"].items()):
        if name in tabled or "properties" not in schema:
            continue
        about = _cell(schema.get("description", "").split("\n\n", 1)[0])
        parts.append(f"### {name}\n\n" + (f"{about}\n\n" if about else "") + model_table(doc, name))
    return "\n".join(parts)


def calls_table(doc: dict[str, Any]) -> str:
    lines = ["| call | body | answers | what |", "|---|---|---|---|"]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            answers = []
            for status, answer in op["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                answers.append(f"{status} {type_of(schema)}" if schema else status)
            lines.append(
                f"| `{method.upper()} {path}` | {type_of(body['schema']) if body else ''} "
                f"| {_cell(' · '.join(answers))} | {_cell(op['summary'])} |"
            )
    return "\n".join(lines) + "\n"


def render(text: str, doc: dict[str, Any] | None = None) -> str:
    """The page with every marked table written afresh."""
    doc = doc or document()
    tabled = {
        m.group(2).split()[1] for m in _BLOCK.finditer(text) if m.group(2).startswith("model ")
    }

    def table(match: re.Match[str]) -> str:
        what = match.group(2).split()
        if what == ["calls"]:
            body = calls_table(doc)
        elif what == ["models"]:
            body = models_tables(doc, tabled)
        elif len(what) == 2 and what[0] == "model":
            body = model_table(doc, what[1])
        else:
            raise SystemExit(f"docs/api.md: unknown table {match.group(2)!r}")
        return f"{match.group(1)}{body}{match.group(4)}"

    return _BLOCK.sub(table, text)


def main(argv: list[str]) -> int:
    current = DOC.read_text()
    wanted = render(current)
    if "--check" in argv:
        if wanted != current:
            print("docs/api.md differs from the API: run python -m server.api_doc", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        Path(DOC).write_text(wanted)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
