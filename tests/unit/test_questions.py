"""The questions a step asks: a schema job code declares, and the answers checked against it."""

from __future__ import annotations

from typing import Any

import pytest

from jobcast.questions import answer_problems, schema_problem
from workers.jobs.builtin import APPROVAL_SCHEMA

NESTED = {
    "type": "object",
    "properties": {
        "pick": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
        "contact": {
            "type": "object",
            "properties": {"email": {"type": "string"}},
            "required": ["email"],
        },
    },
    "required": ["pick"],
}


@pytest.mark.parametrize(
    ("schema", "answer", "field"),
    [
        (APPROVAL_SCHEMA, {"approve": "yes"}, "answer.approve"),
        (APPROVAL_SCHEMA, {"note": "no"}, "answer.approve"),
        (APPROVAL_SCHEMA, {"approve": True, "colour": "red"}, "answer.colour"),
        (APPROVAL_SCHEMA, [True], "answer"),
        (NESTED, {"pick": ["a", "c"]}, "answer.pick.1"),
        (NESTED, {"pick": ["a", "b", "a"]}, "answer.pick"),
        (NESTED, {"pick": [], "contact": {}}, "answer.contact.email"),
    ],
)
def test_an_answer_that_does_not_fit_names_the_field(
    schema: dict[str, Any], answer: Any, field: str
) -> None:
    problems = answer_problems(schema, answer)
    assert problems and problems[0]["field"] == field, problems
    assert problems[0]["message"]


def test_an_answer_that_fits_has_no_problems() -> None:
    assert answer_problems(APPROVAL_SCHEMA, {"approve": False, "note": "too early"}) == []
    assert answer_problems(NESTED, {"pick": ["b"], "contact": {"email": "x@y"}}) == []


@pytest.mark.parametrize(
    ("schema", "fault"),
    [
        ({"type": "a colour"}, "type"),
        ({"properties": {"n": {"minimum": "one"}}}, "minimum"),
        ([{"type": "string"}], "JSON object"),
        ("boolean", "JSON object"),
    ],
)
def test_a_schema_that_is_not_json_schema_is_named(schema: Any, fault: str) -> None:
    problem = schema_problem(schema)
    assert problem is not None and fault in problem, problem


def test_a_valid_schema_has_no_problem() -> None:
    assert schema_problem(APPROVAL_SCHEMA) is None
    assert schema_problem(NESTED) is None
