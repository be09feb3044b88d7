"""The questions a step asks a person: their JSON Schema, and whether an answer fits it.

Job code declares the schema (``job.ask(prompt, schema)``); the worker checks that it
is a valid JSON Schema before the job waits (a wrong one fails the job, with the
schema's fault in the message, not the worker), and the web process checks each
answer against it before storing it (a 422 naming the field at fault).
"""

from __future__ import annotations

from typing import Any

# what the time limit of a question does when it passes
ON_TIMEOUT = ("fail", "default")


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a usable JSON Schema (None: it is)."""
    if not isinstance(schema, dict):
        return f"the schema must be a JSON object, got {type(schema).__name__}"
    # loaded at the first question, not at every process's start (a fifth of a second)
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "the schema"
        return f"{where}: {exc.message}"
    return None


def answer_problems(schema: dict[str, Any], answer: Any) -> list[dict[str, str]]:
    """The fields of ``answer`` that do not fit ``schema``, first-found order, each
    ``{"field": "answer.x", "message"}`` (empty: it fits)."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(answer), key=lambda e: list(map(str, e.path))):
        path = [str(p) for p in error.path]
        # a missing or unexpected key is reported on its object: name the key itself
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [k for k in error.validator_value if k not in error.instance]
            path.extend(str(k) for k in missing[:1])
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            extra = sorted(k for k in error.instance if k not in allowed)
            path.extend(str(k) for k in extra[:1])
        problems.append({"field": ".".join(["answer", *path]), "message": error.message})
    return problems
