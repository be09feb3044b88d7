"""Install-wide numbers: /metrics gauges, the admin stats and the ETA's sample."""

from __future__ import annotations

from typing import Any

import asyncpg

from jobcast.sql import QUERIES
from jobcast.store.base import StoreBase


class Stats(StoreBase):
    async def gauges(self, stale_after_s: float) -> dict[str, float | dict[str, float]]:
        """Install-wide numbers for /metrics: running and pending by type, waits, stuck jobs."""

        async def read() -> dict[str, float | dict[str, float]]:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(QUERIES["active_by_type"])
                oldest = await conn.fetchval(QUERIES["oldest_pending"])
                stuck = await conn.fetchval(QUERIES["stuck"], stale_after_s)
                stuck_pending = await conn.fetch(QUERIES["stuck_pending"])
            running = {r["type"]: float(r["n"]) for r in rows if r["status"] == "running"}
            pending = {r["type"]: float(r["n"]) for r in rows if r["status"] == "pending"}
            return {
                "running_jobs": running,
                "pending_jobs": pending,
                "oldest_pending_seconds": float(oldest),
                "stuck_jobs": float(stuck),
                "stuck_pending_jobs": {r["type"]: float(r["n"]) for r in stuck_pending},
            }

        return await self._run(read)

    async def stats(self, stale_after_s: float, *, live: bool = False) -> dict[str, Any]:
        """Counts by type and status (``live``: of the jobs not finished alone), the oldest
        due wait, per-type rates over 1 h and 1 day."""

        async def read() -> dict[str, Any]:
            async with self.pool.acquire() as conn:
                counts = await conn.fetch(QUERIES["live_counts"] if live else QUERIES["counts"])
                oldest = await conn.fetchval(QUERIES["oldest_pending"])
                windows = await conn.fetch(QUERIES["type_windows"], 3600, 86_400)
                stuck = await conn.fetchval(QUERIES["stuck"], stale_after_s)
                stuck_pending = await conn.fetch(QUERIES["stuck_pending"])
            return {
                "counts": counts,
                "oldest": oldest,
                "windows": windows,
                "stuck": stuck,
                "stuck_pending": {r["type"]: r["n"] for r in stuck_pending},
            }

        raw = await self._run(read)
        by_type: dict[str, dict[str, int]] = {}
        by_status: dict[str, int] = {}
        for row in raw["counts"]:
            by_type.setdefault(row["type"], {})[row["status"]] = row["n"]
            by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
        return {
            "by_status": by_status,
            "by_type": by_type,
            "oldest_pending_s": round(raw["oldest"], 3),
            "stuck_running": raw["stuck"],
            "stuck_pending": raw["stuck_pending"],
            "last_hour": _window(raw["windows"], "short"),
            "last_day": _window(raw["windows"], "long"),
        }

    async def step_history(self, job_type: str, jobs: int = 50) -> list[asyncpg.Record]:
        """Inputs and step durations of the type's last completed jobs."""
        rows: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(QUERIES["step_history"], job_type, jobs)
        )
        return rows


def _window(rows: list[asyncpg.Record], which: str) -> dict[str, dict[str, Any]]:
    """Per type: finished, failed, failure rate and run-time percentiles over one of the two
    windows of ``type_windows`` (``short`` or ``long``); a type with no job finished in it
    is left out."""
    shown: dict[str, dict[str, Any]] = {}
    for r in rows:
        finished, failed = r[f"{which}_finished"], r[f"{which}_failed"]
        if finished:
            shown[r["type"]] = {
                "finished": finished,
                "failed": failed,
                "failure_rate": round(failed / finished, 4),
                "p50_s": r[f"{which}_p50_s"],
                "p95_s": r[f"{which}_p95_s"],
            }
    return shown
