"""The four steps of ``csv_insights`` and the report they make.

Polars does the counting, in a thread (``asyncio.to_thread``), so that the
worker's event loop keeps sending heartbeats and can cancel the job between
columns.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from jobcast.registry import JobContext
from workers.jobs.csv_insights import CsvInsightsInput
from workers.jobs.csv_insights.correlate import correlations
from workers.jobs.csv_insights.profile import profile_column
from workers.jobs.csv_insights.read import Table, read_table


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
