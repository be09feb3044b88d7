"""``csv_insights``: profile uploaded CSV files column by column, and how their numbers relate.

Files come from ``POST /api/uploads``; the API checks at submit that each belongs
to the job's owner. A file is refused with a message saying what is wrong with
it (binary, not UTF-8, a line with the wrong number of fields, empty, too large)
rather than profiled half-way: retrying would not make it any better, so these
are permanent errors.

Polars does the counting, in a thread (``asyncio.to_thread``), so that the
worker's event loop keeps sending heartbeats and can cancel the job between
columns.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import math
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobcast.errors import PermanentError
from jobcast.registry import JobContext, JobType, Step, Upload

MAX_FILE_BYTES = 50 * 1_048_576
MAX_FILES = 5
TOP_VALUES = 5
OUTLIER_EXAMPLES = 5
STRONG_CORRELATION = 0.5
# the full correlation matrix is given up to this many numeric columns; strong pairs always
MATRIX_MAX_COLUMNS = 20
# pairs grow with the square of the columns: beyond this many, the first ones are correlated
MAX_CORRELATED_COLUMNS = 50
QUANTILES = {"p5": 0.05, "p25": 0.25, "p75": 0.75, "p95": 0.95}
# what the schema is guessed from first; the whole file when that guess fails further down
INFER_SCHEMA_ROWS = 10_000
MAX_TEXT_VALUE_CHARS = 200
# what spreadsheets and data tools write for "no value"; an empty field is missing too
MISSING_MARKERS = ("NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "#N/A")
_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_CHARS = 64 * 1024
_SNIFF_ROWS = 50
# a text file has almost no control bytes besides tab and line breaks; a binary one has many
_BINARY_CONTROL_SHARE = 0.05
_TEXT_CONTROLS = frozenset(b"\t\n\r\f")


class CsvInsightsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upload_ids: list[str] = Field(
        min_length=1,
        max_length=MAX_FILES,
        description="Ids from POST /api/uploads of the CSV files to profile (1 to 5).",
    )
    max_rows: int | None = Field(
        None, ge=1, le=100_000_000, description="Refuse a file with more data rows than this."
    )

    @field_validator("upload_ids")
    @classmethod
    def _each_once(cls, upload_ids: list[str]) -> list[str]:
        if len(set(upload_ids)) != len(upload_ids):
            raise ValueError("each upload may be listed once")
        return upload_ids


# reading a file


@dataclass(frozen=True, slots=True)
class Table:
    upload_id: str
    filename: str
    delimiter: str
    frame: pl.DataFrame


def decode_text(name: str, data: bytes) -> str:
    """The file as text, or a PermanentError saying why it is not a text file in UTF-8."""
    sample = data[:_SNIFF_CHARS]
    controls = sum(1 for b in sample if (b < 0x20 and b not in _TEXT_CONTROLS) or b == 0x7F)
    if b"\x00" in sample or controls > _BINARY_CONTROL_SHARE * len(sample):
        raise PermanentError(f"{name} is not a CSV file: it holds binary data, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PermanentError(
            f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): "
            "save it as UTF-8 and upload it again"
        ) from None


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the same number of fields, and most.

    Tried in the order , ; tab |, so a tie goes to the comma. When no candidate gives the
    first lines one shape, the one that splits the header most is kept, so that the error
    about the odd line speaks of the delimiter the file most likely uses.
    """
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS:
        sample = sample[: sample.rfind("\n") + 1] or sample  # no half line at the end
    best, best_rank = ",", (False, 1)
    for delimiter in _DELIMITERS:
        try:
            rows = [
                r
                for r in itertools.islice(
                    csv.reader(io.StringIO(sample), delimiter=delimiter), _SNIFF_ROWS
                )
                if r
            ]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        rank = (all(len(r) == len(rows[0]) for r in rows), len(rows[0]))
        if rank > best_rank:
            best, best_rank = delimiter, rank
    return best


def count_rows(name: str, text: str, delimiter: str, max_rows: int | None) -> int:
    """The number of data rows, after checking that each has as many fields as the header.

    Polars would fill a short line with nulls without a word; a visitor wants to hear which
    line is wrong. Blank lines are not rows.
    """
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    try:
        header = next(reader, [])
        rows = 0
        for row in reader:
            if not row or not any(row):
                continue
            if len(row) != len(header):
                raise PermanentError(
                    f"{name}: line {reader.line_num} has {len(row)} field"
                    f"{'s' if len(row) != 1 else ''} where the header has {len(header)}"
                )
            rows += 1
            if max_rows is not None and rows > max_rows:
                raise PermanentError(f"{name} has more than {max_rows} rows (max_rows)")
    except csv.Error as exc:
        raise PermanentError(
            f"{name}: line {reader.line_num} cannot be read as CSV ({exc})"
        ) from None
    if not rows:
        raise PermanentError(f"{name} has a header but no data rows")
    return rows


def _read_frame(name: str, data: bytes, delimiter: str) -> pl.DataFrame:
    last_error: pl.exceptions.PolarsError | None = None
    for infer_rows in (INFER_SCHEMA_ROWS, None):  # a late odd value: guess from every row
        try:
            return pl.read_csv(
                io.BytesIO(data),
                separator=delimiter,
                infer_schema_length=infer_rows,
                try_parse_dates=True,
                null_values=list(MISSING_MARKERS),
            )
        except pl.exceptions.PolarsError as exc:
            last_error = exc
    reason = str(last_error).strip().splitlines()[0] if last_error else "unknown error"
    raise PermanentError(f"{name} could not be read as CSV: {reason}")


def read_table(upload: Upload, max_rows: int | None) -> Table:
    """Check an uploaded file and read it into a frame; PermanentError saying what is wrong."""
    name, data = upload.filename, upload.data
    if len(data) > MAX_FILE_BYTES:
        raise PermanentError(
            f"{name} is {len(data) / 1_048_576:.1f} MB: at most "
            f"{MAX_FILE_BYTES // 1_048_576} MB can be profiled"
        )
    if not data.strip():
        raise PermanentError(f"{name} is empty")
    text = decode_text(name, data)
    delimiter = sniff_delimiter(text)
    count_rows(name, text, delimiter, max_rows)
    frame = _read_frame(name, data, delimiter)
    # lines left blank, or with every field empty, are not records (count_rows skips them too)
    frame = frame.filter(~pl.all_horizontal(pl.all().is_null()))
    return Table(upload.id, name, delimiter, frame.rename(_names_for_blanks(frame.columns)))


def _names_for_blanks(columns: list[str]) -> dict[str, str]:
    """``column_N`` for each column whose header is blank, never clashing with another name."""
    taken = set(columns)
    renames = {}
    for i, column in enumerate(columns):
        if not column.strip():
            new = f"column_{i + 1}"
            while new in taken:
                new += "_"
            taken.add(new)
            renames[column] = new
    return renames


# profiling a column


def _number(value: Any) -> float | int | None:
    """A JSON-able number: None for null, NaN and infinity (which JSON cannot hold)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _kind(dtype: pl.DataType) -> str:
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
        "min": _number(values.min()),
        "max": _number(values.max()),
        "mean": _number(floats.mean()),
        "median": _number(floats.median()),
        "std": _number(floats.std()),
    }
    quantiles = {k: _number(floats.quantile(q, "linear")) for k, q in QUANTILES.items()}
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
        "low_fence": _number(low),
        "high_fence": _number(high),
        "examples": [_number(v) for v in extreme.to_list()],
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
    kind = _kind(series.dtype)
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


# correlations


def correlatable(frame: pl.DataFrame) -> list[str]:
    """Numeric columns with at least two values that vary: Pearson's r is defined for them."""
    names = []
    for name in frame.columns:
        series = frame.get_column(name)
        if _kind(series.dtype) != "numeric":
            continue
        values = series.cast(pl.Float64).fill_nan(None).drop_nulls()
        spread = _number(values.std())
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
    value = _number(r)
    return None if value is None else round(float(value), 4)


# the job


STEPS = (
    Step("parse", "Read files", 2, estimate_s=0.5),
    Step("profile", "Profile columns", 4, estimate_s=1),
    Step("correlate", "Correlate", 2, estimate_s=0.5),
    Step("report", "Report", 1, estimate_s=0.1),
)


async def _read_all(job: JobContext, params: CsvInsightsInput) -> list[Table]:
    tables = []
    total = len(params.upload_ids)
    for i, upload_id in enumerate(params.upload_ids):
        upload = await job.read_upload(upload_id)
        await job.progress(100 * i / total, f"Reading {upload.filename}")
        table = await asyncio.to_thread(read_table, upload, params.max_rows)
        tables.append(table)
        await job.progress(
            100 * (i + 1) / total,
            f"Read {table.filename}: {table.frame.height} rows, {table.frame.width} columns",
        )
    return tables


async def _profile_all(job: JobContext, tables: list[Table]) -> list[list[dict[str, Any]]]:
    total = sum(t.frame.width for t in tables)
    # about a hundred progress reports at most, however many columns
    every = max(1, math.ceil(total / 100))
    profiles: list[list[dict[str, Any]]] = []
    done = 0
    for table in tables:
        columns = []
        for name in table.frame.columns:
            columns.append(await asyncio.to_thread(profile_column, table.frame.get_column(name)))
            done += 1
            if done % every == 0 or done == total:
                await job.progress(
                    100 * done / total,
                    f"Profiled column {done} of {total} ({name} in {table.filename})",
                )
        profiles.append(columns)
    return profiles


async def run_csv_insights(job: JobContext, params: CsvInsightsInput) -> dict[str, Any]:
    async with job.step("parse"):
        tables = await _read_all(job, params)
    async with job.step("profile"):
        profiles = await _profile_all(job, tables)
    async with job.step("correlate"):
        correlated = []
        for i, table in enumerate(tables):
            correlated.append(await asyncio.to_thread(correlations, table.frame))
            strong = len(correlated[-1]["strong"])
            await job.progress(
                100 * (i + 1) / len(tables),
                f"{table.filename}: {strong} strongly correlated pair{'s' if strong != 1 else ''}",
            )
    async with job.step("report"):
        files = [
            {
                "upload_id": t.upload_id,
                "filename": t.filename,
                "delimiter": t.delimiter,
                "rows": t.frame.height,
                "column_count": t.frame.width,
                "columns": p,
                "correlations": c,
            }
            for t, p, c in zip(tables, profiles, correlated, strict=True)
        ]
        rows = sum(t.frame.height for t in tables)
        await job.progress(
            100, f"Profiled {rows} rows in {len(tables)} file{'s' if len(tables) != 1 else ''}"
        )
    return {
        "summary": {
            "files": len(files),
            "rows": rows,
            "columns": sum(t.frame.width for t in tables),
            "strong_correlations": sum(len(c["strong"]) for c in correlated),
        },
        "files": files,
    }


JOB_TYPES = (
    JobType(
        name="csv_insights",
        title="CSV insights",
        input_model=CsvInsightsInput,
        run=run_csv_insights,
        steps=STEPS,
        timeout_s=600,
        # each run may hold a few hundred MB of files and frames: keep a handful at a time
        concurrency=4,
        estimate=lambda params: 1.0 + 2.0 * len(params.upload_ids),
        scale=lambda params: float(len(params.upload_ids)),
        uploads=lambda params: list(params.upload_ids),
    ),
)
