"""The live-data examples of docs/job-types.md run as written: each code block is saved as
the module it names, loaded by a real web process and worker, and its job run."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from jobcast.endpoints import Endpoints
from jobcast.settings import ROOT
from tests.conftest import DatabaseFactory
from tests.support import Stack, launch, submit, watch

pytestmark = pytest.mark.timeout(120)

MODULES = ("summary", "importer", "leads")


def examples() -> dict[str, str]:
    """Each ``# myapp/<name>.py`` code block of the doc, by module name."""
    doc = (ROOT / "docs" / "job-types.md").read_text()
    blocks = re.findall(r"```python\n# myapp/(\w+)\.py\n(.*?)```", doc, flags=re.S)
    return {name: code for name, code in blocks}


@pytest.fixture(scope="module")
async def docs_stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    code = tmp_path_factory.mktemp("code")
    package = code / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    found = examples()
    assert set(MODULES) <= set(found), sorted(found)
    for name in MODULES:
        (package / f"{name}.py").write_text(found[name])
    running = await launch(
        await new_database(),
        endpoints.redis_url,
        Path(tmp_path_factory.mktemp("docs")),
        JOBCAST_JOB_MODULES=",".join(f"myapp.{name}" for name in MODULES),
        PYTHONPATH=os.pathsep.join([str(code), str(ROOT)]),
    )
    try:
        yield running
    finally:
        running.close()


async def run(stack: Stack, job_type: str, **job_input: Any) -> dict[str, Any]:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, job_type, **job_input)
        watched = await watch(stack, token, job_id, timeout_s=60)
        assert watched.events[-1]["status"] == "completed", watched.events[-1]
        view: dict[str, Any] = (await client.get(f"/api/jobs/{job_id}")).json()
        if view["children"]:
            view["children_views"] = [
                (await client.get(f"/api/jobs/{c['id']}")).json() for c in view["children"]
            ]
        return view


async def test_the_streamed_output_example(docs_stack: Stack) -> None:
    view = await run(docs_stack, "summary", text="jobs that talk back")
    assert view["streams"] == {"summary": "jobs that talk back ", "log": '{"words":4}\n'}


async def test_the_live_metadata_example(docs_stack: Stack) -> None:
    view = await run(docs_stack, "import", rows=300, shards=2)
    assert view["metadata"] == {"last_shard_rows": 300}
    for child in view["children_views"]:
        assert child["metadata"] == {"rows_total": 300, "source": "upload", "rows_done": 300}


async def test_the_steps_found_at_run_time_example(docs_stack: Stack) -> None:
    view = await run(docs_stack, "leads", names=["acme", "xyz corp"])
    assert view["result"] == {"enriched": 1, "failed": ["xyz corp"]}
    added = {s["name"]: s for s in view["steps"] if s["parent"] == "enrich"}
    assert added["enrich.1"]["status"] == "completed"
    assert added["enrich.1"]["counters"] == {"done": 3, "total": 3}
    assert added["enrich.1"]["metadata"] == {"name": "acme"}
    assert added["enrich.2"]["status"] == "failed"
    assert added["enrich.2"]["error"]["message"] == "xyz corp: the site answered 503"
    assert [s["name"] for s in view["steps"]] == ["enrich", "enrich.1", "enrich.2", "report"]
