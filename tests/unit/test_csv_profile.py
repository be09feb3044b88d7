"""The pure parts of ``csv_insights``: reading a file, profiling a column, correlating."""

from __future__ import annotations

import json
import random
from typing import Any

import polars as pl
import pytest

from jobcast.errors import InvalidInput, PermanentError
from jobcast.registry import Upload, load_registry
from workers.jobs.csv_insights import (
    MATRIX_MAX_COLUMNS,
    correlations,
    count_rows,
    decode_text,
    profile_column,
    read_table,
    sniff_delimiter,
)


def table(text: str, max_rows: int | None = None) -> pl.DataFrame:
    return read_table(Upload("u1", "t.csv", "text/csv", text.encode()), max_rows).frame


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("a,b,c\n1,2,3\n", ","),
        ("a;b\n1,5;2\n", ";"),
        ("a\tb\n1\t2\n", "\t"),
        ("a|b|c\n1|2|3\n", "|"),
        ('"x, y";z\n"1, 2";3\n', ";"),
        ("single\n1\n2\n", ","),
    ],
)
def test_the_delimiter_is_the_one_that_gives_every_line_one_shape(
    text: str, delimiter: str
) -> None:
    assert sniff_delimiter(text) == delimiter


def test_a_bom_is_not_part_of_the_first_column_name() -> None:
    assert decode_text("t.csv", "\ufeffa,b\n".encode()) == "a,b\n"
    assert table("\ufeffa,b\n1,2\n").columns == ["a", "b"]


def test_rows_are_counted_and_a_ragged_line_is_named() -> None:
    assert count_rows("t.csv", 'a,b\n1,2\n\n"multi\nline",3\n', ",", None) == 2
    with pytest.raises(
        PermanentError,
        match=r"^t\.csv: line 4 has 3 fields where the header "
        r"has 2$",
    ):
        count_rows("t.csv", "a,b\n1,2\n3,4\n5,6,7\n", ",", None)
    with pytest.raises(PermanentError, match=r"more than 2 rows \(max_rows\)"):
        count_rows("t.csv", "a\n1\n2\n3\n", ",", 2)
    assert count_rows("t.csv", "a\n1\n2\n", ",", 2) == 2


def test_blank_lines_are_not_rows_and_blank_headers_get_names() -> None:
    frame = table("a,,column_2\n1,2,3\n\n,,\n4,5,6\n")
    assert frame.columns == ["a", "column_2_", "column_2"]
    assert frame.height == 2


def test_missing_markers_count_as_missing() -> None:
    frame = table("n,label\n1,NA\nnan,x\nN/A,y\n4,None\n")
    n, label = (profile_column(frame.get_column(c)) for c in frame.columns)
    assert n["dtype"] == "Int64" and n["missing"] == 2 and n["mean"] == 2.5
    assert label["missing"] == 2
    assert label["top_values"] == [{"value": "x", "count": 1}, {"value": "y", "count": 1}]


def test_a_late_odd_value_makes_the_column_text_instead_of_failing() -> None:
    frame = table("n\n" + "1\n" * 12_000 + "oops\n")
    assert frame.schema["n"] == pl.String and frame.height == 12_001


def test_a_numeric_profile_is_json_without_nan_or_infinity() -> None:
    series = pl.Series("x", [1.0, float("nan"), float("inf"), None, 3.0])
    profile = profile_column(series)
    json.dumps(profile, allow_nan=False)  # raises on NaN or infinity
    assert profile["missing"] == 2 and profile["missing_pct"] == 40.0
    assert profile["max"] is None and profile["min"] == 1.0
    empty = profile_column(pl.Series("e", [None, None], dtype=pl.Float64))
    json.dumps(empty, allow_nan=False)
    assert empty["mean"] is None and empty["outliers"]["count"] == 0


def test_outliers_are_outside_the_iqr_fences_farthest_first() -> None:
    values = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 100, -40, 60]
    outliers = profile_column(pl.Series("v", values))["outliers"]
    # p25 = 12, p75 = 18: fences at 3 and 27
    assert (outliers["low_fence"], outliers["high_fence"]) == (3.0, 27.0)
    assert outliers["count"] == 3 and outliers["examples"] == [100, -40, 60]


def test_text_top_values_break_ties_by_value() -> None:
    profile = profile_column(pl.Series("s", ["b", "a", "c", "a", "b", "d", None]))
    assert profile["kind"] == "text" and profile["distinct"] == 4
    assert profile["top_values"][:3] == [
        {"value": "a", "count": 2},
        {"value": "b", "count": 2},
        {"value": "c", "count": 1},
    ]


def test_dates_and_booleans_get_their_own_kind() -> None:
    frame = table("day,ok\n2024-03-01,true\n2024-01-15,false\n2024-02-01,true\n")
    day, ok = (profile_column(frame.get_column(c)) for c in frame.columns)
    assert (day["kind"], day["min"], day["max"]) == ("temporal", "2024-01-15", "2024-03-01")
    assert ok["kind"] == "boolean"
    assert ok["top_values"] == [{"value": True, "count": 2}, {"value": False, "count": 1}]


def test_correlations_skip_constant_columns_and_rank_strong_pairs() -> None:
    frame = pl.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "up": [2.0, 4.1, 5.9, 8.2, 9.9],
            "down": [5, 4, 3, 2, 1],
            "flat": [7, 7, 7, 7, 7],
            "weak": [1.0, -1.0, 1.0, -1.0, 1.0],
            "name": ["a", "b", "c", "d", "e"],
        }
    )
    result = correlations(frame)
    assert result["columns"] == ["x", "up", "down", "weak"]
    assert [(p["a"], p["b"]) for p in result["strong"]][:1] == [("x", "down")]
    assert {(p["a"], p["b"]) for p in result["strong"]} == {
        ("x", "up"),
        ("x", "down"),
        ("up", "down"),
    }
    assert result["strong"][0]["r"] == -1.0
    assert result["matrix"][0][2] == result["matrix"][2][0] == -1.0
    assert result["matrix"][3][0] == 0.0


def test_the_full_matrix_is_left_out_when_there_are_many_columns() -> None:
    n = MATRIX_MAX_COLUMNS + 1
    rng = random.Random(20)
    frame = pl.DataFrame({f"c{i}": [rng.random() for _ in range(10)] for i in range(n)})
    result = correlations(frame)
    assert len(result["columns"]) == n and result["matrix"] is None


def test_the_input_needs_one_to_five_distinct_uploads() -> None:
    insights = load_registry().get("csv_insights")
    bad_inputs: list[dict[str, Any]] = [
        {"upload_ids": []},
        {"upload_ids": ["a"] * 2},
        {"upload_ids": list("abcdef")},
        {"upload_ids": ["a"], "max_rows": 0},
    ]
    for bad in bad_inputs:
        with pytest.raises(InvalidInput, match=r"^input\.(upload_ids|max_rows)"):
            insights.parse_input(bad)
    assert insights.uploads(insights.parse_input({"upload_ids": ["a", "b"]})) == ["a", "b"]
