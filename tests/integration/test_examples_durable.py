"""The two systems rebuilt as examples (examples/lead_scrape.py, examples/company_analysis.py),
loaded through JOBCAST_JOB_MODULES and run by real web and worker processes."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

from jobcast.client import AsyncClient, BadRequest, Event, Job
from jobcast.endpoints import Endpoints
from tests.conftest import DatabaseFactory
from tests.support import ROOT, Stack, eventually, launch

EXAMPLES = {
    "JOBCAST_JOB_MODULES": "lead_scrape,company_analysis",
    "PYTHONPATH": str(ROOT / "examples"),
}
RESTAURANTS = json.loads((ROOT / "examples" / "fixtures" / "restaurants.json").read_text())[
    "restaurants"
]


def load_example(name: str) -> ModuleType:
    """An example module, loaded in the test's process too (for its fake upstream)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
async def examples(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(), endpoints.redis_url, tmp_path_factory.mktemp("examples"), **EXAMPLES
    )
    try:
        yield stack
    finally:
        stack.close()


async def until_status(client: AsyncClient, job_id: str, *wanted: str) -> Job:
    async def reached() -> Job | None:
        job = await client.get(job_id)
        return job if job.status in wanted else None

    return await eventually(reached, timeout_s=30, what=f"job {job_id} {wanted}")


def by_id(ids: list[str]) -> list[dict[str, Any]]:
    return [r for r in RESTAURANTS if r["id"] in ids]


async def test_lead_scrape_asks_which_to_enrich_and_enriches_each_pick_in_its_own_step(
    examples: Stack,
) -> None:
    with_site = [r["id"] for r in RESTAURANTS if r["website"]][:2]
    without_site = next(r["id"] for r in RESTAURANTS if not r["website"])
    async with AsyncClient(examples.base_url) as client:
        await client.create_session()
        job_id = (await client.submit("lead_scrape", {"page_s": 0.05})).id
        job = await until_status(client, job_id, "waiting")
        request = job.input_request or {}
        assert request["step"] == "pick"
        choices = request["schema"]["properties"]["picks"]["items"]["oneOf"]
        assert len(choices) == len(RESTAURANTS) == 40
        assert job.metadata == {"city": "Lisbon", "candidates": 40}

        with pytest.raises(BadRequest) as wrong:
            await client.answer(job_id, {"picks": ["not-a-restaurant"]})
        assert wrong.value.status == 422
        assert any("picks" in d["field"] for d in wrong.value.details)

        await client.answer(job_id, {"picks": [*with_site, without_site]})
        done = await until_status(client, job_id, "completed", "failed")
        events = await client.events(job_id)

    assert done.status == "completed", done.error
    result = done.result
    assert [lead["id"] for lead in result["leads"]] == [r["id"] for r in by_id(with_site)]
    assert [f["id"] for f in result["failed"]] == [without_site]
    assert "lists no website" in result["failed"][0]["error"]
    assert done.metadata["enriched"] == 2 and done.metadata["failed"] == 1

    # one step per pick under "enrich": counters for the ones read, its own error for the other
    added = [s for s in done.steps if s.parent == "enrich"]
    assert len(added) == 3
    failed = [s for s in added if s.status == "failed"]
    assert len(failed) == 1 and failed[0].error is not None
    assert "lists no website" in failed[0].error["message"]
    for step in added:
        if step.status == "completed":
            assert step.counters == {"done": 3, "total": 3}

    # the attempt after the answer skipped the discovery: it ran once in all
    discover = next(s for s in done.steps if s.name == "discover")
    assert discover.attempts == 1
    resumed = [e for e in events if e.kind == "resumed"]
    assert resumed and resumed[-1].step == "pick" and "discover" in (resumed[-1].skipped or [])


async def test_lead_scrape_enriches_in_child_jobs_when_asked(examples: Stack) -> None:
    picks = [r["id"] for r in RESTAURANTS if r["website"]][:3]
    async with AsyncClient(examples.base_url) as client:
        await client.create_session()
        job_id = (await client.submit("lead_scrape", {"page_s": 0.05, "children": True})).id
        await until_status(client, job_id, "waiting")
        await client.answer(job_id, {"picks": picks})
        done = await until_status(client, job_id, "completed", "failed")
        assert done.status == "completed", done.error
        assert sorted(c.status for c in done.children or []) == ["completed"] * 3
        assert sorted(lead["id"] for lead in done.result["leads"]) == sorted(picks)


async def test_company_analysis_retries_at_the_rate_limited_step_without_paying_again(
    examples: Stack,
) -> None:
    with load_example("company_analysis").FakeUpstream() as upstream:
        async with AsyncClient(examples.base_url) as client:
            await client.create_session()
            job_id = (
                await client.submit(
                    "company_analysis",
                    {"company": "Acme", "upstream_url": upstream.url, "step_s": 0.1},
                )
            ).id
            events: list[Event] = [e async for e in client.watch(job_id)]
            done = await client.get(job_id)

    assert done.status == "completed", done.error
    # the paid calls: each step once, the rate-limited one twice (the 429, then the 200)
    assert dict(upstream.calls) == {"profile": 1, "financials": 1, "news": 1, "competitors": 2}
    assert done.attempts == 2
    retried = [e for e in events if e.kind == "status" and e.status == "pending" and e.error]
    assert len(retried) == 1
    assert retried[0].error is not None and retried[0].error.category == "transient"
    assert "Retry-After: 1" in retried[0].error.message
    resumed = [e for e in events if e.kind == "resumed"]
    assert len(resumed) == 1
    assert resumed[0].step == "competitors"
    assert resumed[0].skipped == ["profile", "financials", "news"]
    messages = [e.message for e in events if e.kind == "progress" and e.message]
    assert "Reading competitors: 4 of 4" in messages  # a step's last report is always stored
    assert done.result["summary"] == "Acme: $310M revenue, 3 headlines, 3 competitors"


async def test_company_analysis_fails_at_once_on_a_permanent_upstream_error(
    examples: Stack,
) -> None:
    with load_example("company_analysis").FakeUpstream(rate_limit_first=None) as upstream:
        async with AsyncClient(examples.base_url) as client:
            await client.create_session()
            # an upstream path that answers 404: a permanent error, no retry
            job_id = (
                await client.submit(
                    "company_analysis",
                    {"company": "Acme", "upstream_url": upstream.url + "/nowhere", "step_s": 0},
                )
            ).id
            done = await until_status(client, job_id, "failed")
    assert done.attempts == 1
    assert done.error is not None and done.error.category == "permanent"
    assert "HTTP 404" in done.error.message
