"""Lead scraping with a person in the loop, as an app would write it on jobcast.

Discover candidate restaurants (from ``fixtures/restaurants.json``: no network), ask the
owner which of them to enrich (a checkbox per restaurant in the browser, or
``jobcast answer ID --json '{"picks": ["r01", "r05"]}'``), then enrich each pick in a step
of its own, added at run time, with counters (pages read of the pages to read) and its
own error when it fails while the job goes on; last, a report. With ``children`` each
pick is enriched by a child job of type ``lead_enrich`` instead, and the parent's steps
follow them.

    PYTHONPATH=examples JOBCAST_JOB_MODULES=lead_scrape make run

The job waits for the answer without holding a worker: the discovery is a checkpoint,
so the attempt that goes on after the answer does not discover again.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobcast.errors import PermanentError
from jobcast.registry import JobContext, JobType, Step

FIXTURE = Path(__file__).with_name("fixtures") / "restaurants.json"

# what enriching one restaurant reads, in order: each is one count of its step's counters
PAGES = ("home page", "menu", "reviews")


class LeadScrapeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    city: str = Field("Lisbon", min_length=1, max_length=100, description="Where to look.")
    page_s: float = Field(0.2, ge=0, le=10, description="Seconds to read one page of a site.")
    children: bool = Field(False, description="Enrich each pick in a child job of its own.")
    answer_within_s: float | None = Field(
        None, gt=0, description="How long the question waits; then the job fails."
    )


class EnrichInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    restaurant: dict[str, Any]
    page_s: float = Field(0.2, ge=0, le=10)


def discover(city: str) -> list[dict[str, Any]]:
    """The candidates in that city, best rated first."""
    listed = json.loads(FIXTURE.read_text())["restaurants"]
    found = [r for r in listed if r["city"].lower() == city.lower()]
    if not found:
        raise PermanentError(f"no restaurants are listed in {city!r}")
    return sorted(found, key=lambda r: (-r["rating"], r["name"]))


def pick_schema(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer: {"picks": [ids]}, each id one of the candidates (shown by name)."""
    choices = [
        {"const": r["id"], "title": f"{r['name']} · {r['cuisine']} · {r['rating']}"}
        for r in candidates
    ]
    return {
        "type": "object",
        "properties": {
            "picks": {
                "type": "array",
                "title": "Restaurants to enrich",
                "items": {"oneOf": choices},
                "minItems": 1,
                "uniqueItems": True,
            }
        },
        "required": ["picks"],
        "additionalProperties": False,
    }


async def enrich(restaurant: dict[str, Any], page_s: float, count: Any) -> dict[str, Any]:
    """Read the restaurant's pages (a stand-in for a scraper); ``count(done, total)`` after each."""
    if not restaurant.get("website"):
        raise PermanentError(f"{restaurant['name']} lists no website")
    for done, _page in enumerate(PAGES, start=1):
        await asyncio.sleep(page_s)
        await count(done, len(PAGES))
    return {
        "id": restaurant["id"],
        "name": restaurant["name"],
        "website": restaurant["website"],
        "email": f"hello@{restaurant['website'].removeprefix('https://')}",
        "pages": len(PAGES),
    }


async def scrape_leads(job: JobContext, params: LeadScrapeInput) -> dict[str, Any]:
    candidates = await job.run_step("discover", lambda: _discover(job, params.city))
    by_id = {r["id"]: r for r in candidates}

    async with job.step("pick") as pick:
        if not pick.done:
            pick.result = await job.ask(
                f"Pick which of these {len(candidates)} restaurants to enrich",
                pick_schema(candidates),
                timeout_s=params.answer_within_s,
            )
    picks = [by_id[i] for i in pick.result["picks"]]

    async with job.step("enrich") as step:
        if not step.done:
            run = _enrich_children if params.children else _enrich_steps
            step.result = await run(job, picks, params.page_s)
    enriched, failed = step.result["enriched"], step.result["failed"]

    async with job.step("report"):
        return {
            "summary": f"{len(enriched)} of {len(picks)} leads enriched, {len(failed)} failed",
            "leads": enriched,
            "failed": failed,
        }


async def _discover(job: JobContext, city: str) -> list[dict[str, Any]]:
    found = discover(city)
    await job.set_metadata(city=city, candidates=len(found))
    return found


async def _enrich_steps(
    job: JobContext, picks: list[dict[str, Any]], page_s: float
) -> dict[str, Any]:
    """One step per pick, added now; one that fails keeps its error and the others go on."""
    steps = await job.add_steps(
        [f"Enrich {r['name']}" for r in picks], counters={"done": 0, "total": len(PAGES)}
    )
    enriched: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for restaurant, step in zip(picks, steps, strict=True):
        try:
            async with step:
                lead = await enrich(restaurant, page_s, step.count)
                await step.set_metadata(email=lead["email"])
            enriched.append(lead)
        except PermanentError as exc:
            failed.append({"id": restaurant["id"], "name": restaurant["name"], "error": str(exc)})
        await job.set_metadata(enriched=len(enriched), failed=len(failed))
    return {"enriched": enriched, "failed": failed}


async def _enrich_children(
    job: JobContext, picks: list[dict[str, Any]], page_s: float
) -> dict[str, Any]:
    """A child job per pick; the parent's progress follows theirs."""
    ids = [await job.spawn("lead_enrich", {"restaurant": r, "page_s": page_s}) for r in picks]
    ended = await job.wait_children(ids)
    enriched = [c["result"] for c in ended if c["status"] == "completed"]
    failed = [
        {"id": r["id"], "name": r["name"], "error": (c["error"] or {}).get("message", "failed")}
        for r, c in zip(picks, ended, strict=True)
        if c["status"] != "completed"
    ]
    await job.set_metadata(enriched=len(enriched), failed=len(failed))
    return {"enriched": enriched, "failed": failed}


async def enrich_one(job: JobContext, params: EnrichInput) -> dict[str, Any]:
    async with job.step("read"):

        async def count(done: int, total: int) -> None:
            await job.progress(100 * done / total, f"Read {done} of {total} pages")

        return await enrich(params.restaurant, params.page_s, count)


JOB_TYPES = (
    JobType(
        name="lead_scrape",
        title="Lead scrape",
        input_model=LeadScrapeInput,
        run=scrape_leads,
        steps=(
            Step("discover", "Discover candidates", weight=1),
            Step("pick", "Pick which to enrich", weight=1),
            Step("enrich", "Enrich the picks", weight=6),
            Step("report", "Write the report", weight=1),
        ),
        max_attempts=2,
        timeout_s=600,
        label_field="city",
    ),
    JobType(
        name="lead_enrich",
        title="Enrich one lead",
        input_model=EnrichInput,
        run=enrich_one,
        steps=(Step("read", "Read its pages"),),
        max_attempts=1,
    ),
)
