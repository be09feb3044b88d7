"""``csv_insights``: profile uploaded CSV files column by column, and how their numbers relate.

This module is the type's declaration (its input, steps and limits) and imports
nothing heavy, so the web process can load it. The work, done with polars, is
imported by the worker when a job runs:

- ``read``: a file checked and read into a frame;
- ``profile``: what one column holds;
- ``correlate``: how the numeric columns relate;
- ``run``: the four steps and the report.

Files come from ``POST /api/uploads``; the API checks at submit that each belongs
to the job's owner. A file is refused with a message saying what is wrong with
it (binary, not UTF-8, a line with the wrong number of fields, empty, too large)
rather than profiled half-way: retrying would not make it any better, so these
are permanent errors.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobcast.registry import JobType, Step, lazy

MAX_FILES = 5


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


STEPS = (
    Step("parse", "Read files", 2, estimate_s=0.5),
    Step("profile", "Profile columns", 4, estimate_s=1),
    Step("correlate", "Correlate", 2, estimate_s=0.5),
    Step("report", "Report", 1, estimate_s=0.1),
)

JOB_TYPES = (
    JobType(
        name="csv_insights",
        title="CSV insights",
        input_model=CsvInsightsInput,
        run=lazy("workers.jobs.csv_insights.run:run_csv_insights"),
        steps=STEPS,
        timeout_s=600,
        # each run may hold a few hundred MB of files and frames: keep a handful at a time
        concurrency=4,
        estimate=lambda params: 1.0 + 2.0 * len(params.upload_ids),
        # the work grows with the files' bytes, not with how many there are
        scale="upload_bytes",
        uploads=lambda params: list(params.upload_ids),
    ),
)

# names this module had before the work moved into submodules, imported when first used
_MOVED = {
    "MAX_FILE_BYTES": "read",
    "Table": "read",
    "decode_text": "read",
    "sniff_delimiter": "read",
    "count_rows": "read",
    "read_table": "read",
    "numeric_stats": "profile",
    "top_values": "profile",
    "profile_column": "profile",
    "MATRIX_MAX_COLUMNS": "correlate",
    "correlatable": "correlate",
    "correlations": "correlate",
    "run_csv_insights": "run",
}


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MOVED[name]}"), name)
