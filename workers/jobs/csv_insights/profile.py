"""What one column holds: its type, what is missing, and by kind its spread (numbers),
most frequent values (text, booleans) or range (dates)."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

TOP_VALUES = 5
OUTLIER_EXAMPLES = 5
QUANTILES = {"p5": 0.05, "p25": 0.25, "p75": 0.75, "p95": 0.95}
MAX_TEXT_VALUE_CHARS = 200


def json_number(value: Any) -> float | int | None:
    """A JSON-able number: None for null, NaN and infinity (which JSON cannot hold)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def kind_of(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_numeric():
        return "numeric"
    if dtype.is_temporal():
        return "temporal"
    return "text" if dtype in (pl.String, pl.Categorical) else "other"


def numeric_stats(values: pl.Series) -> dict[str, Any]:
    """Spread of a numeric column without its nulls; outliers by Tukey's 1.5 x IQR fences."""
    floats = values.cast(pl.Float64)
    stats: dict[str, Any] = {
        "min": json_number(values.min()),
        "max": json_number(values.max()),
        "mean": json_number(floats.mean()),
        "median": json_number(floats.median()),
        "std": json_number(floats.std()),
    }
    quantiles = {k: json_number(floats.quantile(q, "linear")) for k, q in QUANTILES.items()}
    stats.update(quantiles)
    p25, p75 = quantiles["p25"], quantiles["p75"]
    if p25 is None or p75 is None:
        stats["outliers"] = {"count": 0, "low_fence": None, "high_fence": None, "examples": []}
        return stats
    low, high = p25 - 1.5 * (p75 - p25), p75 + 1.5 * (p75 - p25)
    outside = values.filter((floats < low) | (floats > high))
    # the farthest from the median first: those are the ones worth a look
    extreme = (
        pl.DataFrame({"value": outside.unique()})
        .with_columns(distance=(pl.col("value").cast(pl.Float64) - (stats["median"] or 0)).abs())
        .sort(["distance", "value"], descending=[True, False])
        .get_column("value")
        .head(OUTLIER_EXAMPLES)
    )
    stats["outliers"] = {
        "count": outside.len(),
        "low_fence": json_number(low),
        "high_fence": json_number(high),
        "examples": [json_number(v) for v in extreme.to_list()],
    }
    return stats


def top_values(values: pl.Series) -> list[dict[str, Any]]:
    """The most frequent values with their counts; ties in value order, so runs agree."""
    counts = values.alias("value").value_counts(name="count")
    counts = counts.sort(["count", "value"], descending=[True, False]).head(TOP_VALUES)
    return [
        {"value": v[:MAX_TEXT_VALUE_CHARS] if isinstance(v, str) else v, "count": c}
        for v, c in counts.iter_rows()
    ]


def profile_column(series: pl.Series) -> dict[str, Any]:
    """What one column holds: its type, what is missing, how many distinct values, and by
    kind its spread (numbers), most frequent values (text, booleans) or range (dates)."""
    if series.dtype.is_float():
        series = series.fill_nan(None)  # "nan" in a file is a missing value, not a number
    rows, missing = series.len(), series.null_count()
    present = series.drop_nulls()
    kind = kind_of(series.dtype)
    profile: dict[str, Any] = {
        "name": series.name,
        "dtype": str(series.dtype),
        "kind": kind,
        "missing": missing,
        "missing_pct": round(100 * missing / rows, 2) if rows else 0.0,
        "distinct": present.n_unique(),
    }
    if kind == "numeric":
        profile.update(numeric_stats(present))
    elif kind in ("text", "boolean"):
        profile["top_values"] = top_values(present)
    elif kind == "temporal" and present.len():
        profile["min"], profile["max"] = str(present.min()), str(present.max())
    return profile
