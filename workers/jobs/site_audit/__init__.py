"""``site_audit``: crawl one site within bounds and report what a visitor would trip over.

This module is the type's declaration (its input, steps and limits) and imports
nothing heavy, so the web process can load it. The crawl itself, which needs
httpx and selectolax, is imported by the worker when a job runs:

- ``urls``: URLs as the crawl compares them, and the site (``Origin``) they belong to;
- ``parse``: what a page and a sitemap say;
- ``fetch``: every request of an audit, robots.txt and the sitemaps;
- ``crawl``: the breadth-first crawl and its bounds;
- ``report``: links judged, the score, the result;
- ``run``: the four steps.

The URL is user input fetched from inside the service's network, so only public
hosts are audited: ``localhost`` or a literal private address is refused at
submit (422), and every connection of the crawl resolves the host once, checks
each address and dials exactly those (``jobcast.net``). ``JOBCAST_AUDIT_HOSTS``
lists hosts that may be audited although they are not public (an intranet host;
loopback in tests).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from jobcast.addresses import AddressRule, host_list
from jobcast.registry import JobType, Step, lazy


def audit_rule() -> AddressRule:
    """Public hosts, and those ``JOBCAST_AUDIT_HOSTS`` lists.

    Read from the environment at each use: the web process checks it when it validates the
    input, the worker when the crawl connects, each in its own environment.
    """
    return AddressRule(listed=host_list(os.environ.get("JOBCAST_AUDIT_HOSTS", "")))


def literal_refusal(host: str) -> str | None:
    """Why this host may not be audited, judged without DNS (at submit); None when it may."""
    return audit_rule().refusal(host)


class SiteAuditInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl = Field(
        description="The page to start from. Only its site (scheme, host and port) is crawled."
    )
    max_pages: int = Field(50, ge=1, le=200, description="Fetch at most this many pages.")
    max_depth: int = Field(
        3, ge=0, le=5, description="Follow links at most this many clicks from the start page."
    )
    concurrency: int = Field(4, ge=1, le=8, description="Requests open at once.")
    timeout_s: float = Field(10.0, ge=0.5, le=30, description="Time limit of each request.")

    @field_validator("url")
    @classmethod
    def _public_host(cls, url: HttpUrl) -> HttpUrl:
        refusal = literal_refusal(url.host or "")
        if refusal is not None:
            raise ValueError(refusal)
        return url


STEPS = (
    Step("robots", "Robots & sitemap", 1, estimate_s=0.5),
    Step("crawl", "Crawl", 6, estimate_s=10),
    Step("analyze", "Analyze", 2, estimate_s=0.2),
    Step("report", "Report", 1, estimate_s=0.1),
)

JOB_TYPES = (
    JobType(
        name="site_audit",
        title="Site audit",
        input_model=SiteAuditInput,
        run=lazy("workers.jobs.site_audit.run:run_site_audit"),
        steps=STEPS,
        timeout_s=600,
        retry_on_timeout=False,
        concurrency=2,
        estimate=lambda params: 2.0 + params.max_pages * 0.3,
        scale=lambda params: float(params.max_pages),
        label_field="url",
    ),
)

# names this module had before the crawl moved into submodules, imported when first used
_MOVED = {
    "normalize": "urls",
    "Origin": "urls",
    "PageContent": "parse",
    "parse_page": "parse",
    "parse_sitemap": "parse",
    "Answer": "fetch",
    "Fetcher": "fetch",
    "Page": "crawl",
    "Crawl": "crawl",
    "analyze": "report",
    "audit_score": "report",
    "build_report": "report",
    "run_site_audit": "run",
}


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MOVED[name]}"), name)
