"""The crawl: breadth-first from the start page, within the site, ``max_pages`` and
``max_depth``, ``concurrency`` requests at a time; what it found and what it left out."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from urllib.robotparser import RobotFileParser

from jobcast.errors import PermanentError, TransientError
from jobcast.registry import JobContext
from workers.jobs.site_audit.fetch import MAX_REDIRECT_HOPS, USER_AGENT, Answer, Fetcher
from workers.jobs.site_audit.parse import PageContent, parse_page
from workers.jobs.site_audit.urls import Origin


@dataclass(slots=True)
class Page:
    url: str
    depth: int
    answer: Answer
    content: PageContent | None = None


def _parse_answer(answer: Answer) -> PageContent:
    return parse_page(answer.text(), answer.url)


@dataclass
class Crawl:
    """The state of one crawl: what was found, fetched and left out, and why."""

    origin: Origin
    robots: RobotFileParser
    fetcher: Fetcher
    max_pages: int
    max_depth: int
    concurrency: int
    pages: dict[str, Page] = field(default_factory=dict)
    frontier: deque[tuple[str, int]] = field(default_factory=deque)
    # every URL queued, fetched or refused by robots.txt: each is considered once
    seen: set[str] = field(default_factory=set)
    # found only beyond max_depth so far (a shorter path may still turn up)
    too_deep: dict[str, None] = field(default_factory=dict)
    disallowed: list[str] = field(default_factory=list)

    def discover(self, url: str, depth: int) -> None:
        if url in self.seen:
            return
        if depth > self.max_depth:
            self.too_deep[url] = None
            return
        self.too_deep.pop(url, None)
        self.seen.add(url)
        if self.robots.can_fetch(USER_AGENT, url):
            self.frontier.append((url, depth))
        else:
            self.disallowed.append(url)

    async def record(self, job: JobContext, url: str, depth: int, answer: Answer) -> Page:
        """Keep a fetched page, queue the links of an HTML one, and say how far the crawl is."""
        page = Page(url, depth, answer)
        if answer.is_html and answer.status is not None and 200 <= answer.status < 300:
            page.content = await asyncio.to_thread(_parse_answer, answer)
            for link in page.content.links:
                if self.origin.owns(link):
                    self.discover(link, depth + 1)
        self.pages[url] = page
        crawled = len(self.pages)
        await job.progress(
            100 * crawled / self.max_pages, f"Crawled {crawled}/{self.max_pages} pages"
        )
        return page

    async def open(self, job: JobContext, start: str) -> None:
        """Fetch the start URL, following its redirects on the site; refuse what cannot be
        audited (unreachable, an error answer, not HTML) before crawling any further."""
        url = start
        if not self.robots.can_fetch(USER_AGENT, url):
            raise PermanentError(f"robots.txt does not allow {USER_AGENT} to fetch {url}")
        for _ in range(MAX_REDIRECT_HOPS + 1):
            self.seen.add(url)
            answer = await self.fetcher.get(url)
            await self.record(job, url, 0, answer)
            target = answer.redirect_target()
            if target is None:
                _check_start(url, answer)
                return
            if not self.origin.owns(target):
                raise PermanentError(
                    f"{url} redirects to {target}, another site: audit that address instead"
                )
            if target in self.seen:
                raise PermanentError(f"{url} redirects in a loop")
            if not self.robots.can_fetch(USER_AGENT, target):
                raise PermanentError(f"robots.txt does not allow {USER_AGENT} to fetch {target}")
            if len(self.pages) >= self.max_pages:
                raise PermanentError(
                    f"{url} redirects to {target}, past the limit of {self.max_pages} pages: "
                    "start from that address instead"
                )
            url = target
        raise PermanentError(f"{start} redirects more than {MAX_REDIRECT_HOPS} times")

    async def run(self, job: JobContext) -> None:
        """Fetch queued pages breadth-first, ``concurrency`` at a time, up to ``max_pages``."""
        in_flight: dict[asyncio.Task[Answer], tuple[str, int]] = {}
        try:
            while self.frontier or in_flight:
                while (
                    self.frontier
                    and len(in_flight) < self.concurrency
                    and len(self.pages) + len(in_flight) < self.max_pages
                ):
                    url, depth = self.frontier.popleft()
                    in_flight[asyncio.create_task(self.fetcher.get(url))] = (url, depth)
                if not in_flight:
                    break  # the page budget is spent; what is left in the frontier is skipped
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    url, depth = in_flight.pop(task)
                    page = await self.record(job, url, depth, task.result())
                    target = page.answer.redirect_target()
                    if target is not None and self.origin.owns(target):
                        self.discover(target, depth)  # a redirect is not a step deeper
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    def skipped(self) -> list[dict[str, str]]:
        return [
            *({"url": u, "reason": "robots"} for u in self.disallowed),
            *({"url": u, "reason": "depth"} for u in self.too_deep),
            *({"url": u, "reason": "max_pages"} for u, _ in self.frontier),
        ]


def _check_start(url: str, answer: Answer) -> None:
    if answer.error is not None or answer.status is None:
        if answer.error and "CERTIFICATE_VERIFY_FAILED" in answer.error:
            raise PermanentError(f"{url} has a TLS certificate that cannot be verified")
        raise TransientError(f"{url} could not be reached: {answer.error}")
    status = f"{answer.status} {answer.reason}".strip()
    if answer.status == 429 or answer.status >= 500:
        raise TransientError(f"{url} answered {status}")
    if answer.status >= 300:
        raise PermanentError(f"{url} answered {status}: there is no page to audit there")
    if not answer.is_html:
        raise PermanentError(
            f"{url} is not an HTML page (it is {answer.content_type or 'of unknown type'})"
        )
