"""How the numeric columns of a file relate: Pearson's r for each pair."""

from __future__ import annotations

import itertools
from typing import Any

import polars as pl

from workers.jobs.csv_insights.profile import json_number, kind_of

STRONG_CORRELATION = 0.5
# the full correlation matrix is given up to this many numeric columns; strong pairs always
MATRIX_MAX_COLUMNS = 20
# pairs grow with the square of the columns: beyond this many, the first ones are correlated
MAX_CORRELATED_COLUMNS = 50


def correlatable(frame: pl.DataFrame) -> list[str]:
    """Numeric columns with at least two values that vary: Pearson's r is defined for them."""
    names = []
    for name in frame.columns:
        series = frame.get_column(name)
        if kind_of(series.dtype) != "numeric":
            continue
        values = series.cast(pl.Float64).fill_nan(None).drop_nulls()
        spread = json_number(values.std())
        if values.len() >= 2 and spread is not None and spread > 0:
            names.append(name)
    return names


def correlations(frame: pl.DataFrame) -> dict[str, Any]:
    """Pearson's r for each pair of numeric columns (rows where both have a value), the
    pairs with |r| of 0.5 or more first by strength, and the full matrix when it is small."""
    names = correlatable(frame)
    used = names[:MAX_CORRELATED_COLUMNS]
    numeric = frame.select(pl.col(n).cast(pl.Float64).fill_nan(None) for n in used)
    pairs = list(itertools.combinations(range(len(used)), 2))
    r_of: dict[tuple[int, int], float | None] = {}
    if pairs:
        row = numeric.select(
            pl.corr(pl.col(used[i]), pl.col(used[j])).alias(str(k))
            for k, (i, j) in enumerate(pairs)
        ).row(0)
        r_of = {pair: _rounded(r) for pair, r in zip(pairs, row, strict=True)}
    strong = [
        {"a": used[i], "b": used[j], "r": r}
        for (i, j), r in sorted(r_of.items(), key=lambda item: -abs(item[1] or 0.0))
        if r is not None and abs(r) >= STRONG_CORRELATION
    ]
    matrix = None
    if len(used) <= MATRIX_MAX_COLUMNS:
        matrix = [
            [1.0 if i == j else r_of.get((min(i, j), max(i, j))) for j in range(len(used))]
            for i in range(len(used))
        ]
    return {
        "columns": used,
        "strong": strong,
        "matrix": matrix,
        "columns_left_out": names[MAX_CORRELATED_COLUMNS:],
    }


def _rounded(r: Any) -> float | None:
    value = json_number(r)
    return None if value is None else round(float(value), 4)
