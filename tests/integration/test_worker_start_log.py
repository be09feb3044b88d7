"""The worker names the job types it loaded in one line at start, so an app whose module
was not picked up sees it at once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from jobcast.endpoints import Endpoints
from jobcast.registry import load_registry
from tests.conftest import DatabaseFactory
from tests.support import eventually, launch

ROOT = Path(__file__).resolve().parents[2]


async def test_the_worker_logs_the_job_types_it_loaded(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path: Path
) -> None:
    pythonpath = os.pathsep.join(
        filter(None, [str(ROOT / "examples"), os.environ.get("PYTHONPATH")])
    )
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path,
        JOBCAST_JOB_MODULES="wordcount",
        PYTHONPATH=pythonpath,
    )
    try:
        sys.path.insert(0, str(ROOT / "examples"))
        try:
            names = [t.name for t in load_registry(["wordcount"])]
        finally:
            sys.path.remove(str(ROOT / "examples"))

        async def ready_line() -> str | None:
            lines = [line for line in stack.logs("worker-0").splitlines() if "worker ready" in line]
            return lines[0] if lines else None

        line = await eventually(ready_line, what="the worker's ready line")
        assert f"{len(names)} job types: {', '.join(names)}" in line
        assert "word_count" in names and "JOBCAST_JOB_MODULES: wordcount" in line
    finally:
        stack.close()
