"""The audit's four steps: robots.txt and the sitemap, the crawl, the links judged, the report."""

from __future__ import annotations

import asyncio
from typing import Any

from jobcast.errors import PermanentError
from jobcast.registry import JobContext
from workers.jobs.site_audit import SiteAuditInput
from workers.jobs.site_audit.crawl import Crawl
from workers.jobs.site_audit.fetch import Fetcher, load_robots, open_client, read_sitemaps
from workers.jobs.site_audit.report import analyze, build_report
from workers.jobs.site_audit.urls import Origin, normalize


async def run_site_audit(job: JobContext, params: SiteAuditInput) -> dict[str, Any]:
    start = normalize(str(params.url))
    if start is None:
        raise PermanentError(f"{params.url} is not an http or https URL")
    origin = Origin.of(start)
    async with open_client(concurrency=params.concurrency, timeout_s=params.timeout_s) as client:
        fetcher = Fetcher(
            client, origin, concurrency=params.concurrency, timeout_s=params.timeout_s
        )
        async with job.step("robots"):
            await job.progress(0, f"Checking {origin.host}")
            robots = await load_robots(fetcher, origin)
            await job.progress(50, "Read robots.txt; looking for a sitemap")
            seeds = await read_sitemaps(fetcher, origin, robots, params.max_pages)
            await job.progress(100, f"Found {len(seeds)} pages in the sitemap")
        crawl = Crawl(
            origin,
            robots,
            fetcher,
            max_pages=params.max_pages,
            max_depth=params.max_depth,
            concurrency=params.concurrency,
        )
        async with job.step("crawl"):
            await crawl.open(job, start)
            for url in seeds:
                crawl.discover(url, 1)  # sitemap pages count as one click from the start
            await crawl.run(job)
    async with job.step("analyze"):
        await job.progress(0, f"Checking the links of {len(crawl.pages)} pages")
        findings = await asyncio.to_thread(analyze, crawl.pages)
        broken = sum(len(links) for links in findings.broken.values())
        await job.progress(100, f"Found {broken} broken link{'s' if broken != 1 else ''}")
    async with job.step("report"):
        report = build_report(start, crawl, findings)
        summary = report["summary"]
        await job.progress(
            100, f"Score {summary['score']}/100 over {summary['pages_crawled']} pages"
        )
    return report
