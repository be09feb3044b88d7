"""Every request of one audit, and the two files read before the crawl: robots.txt and the
sitemaps.

The client follows no redirects (the crawl does, so that each hop is recorded and
none leads off the site), ignores proxy settings, and connects only to addresses
checked against ``audit_rule`` (``jobcast.net``): a host that resolves to a
private address, now or on a later connection, fails the audit with
``TargetRefused``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urljoin
from urllib.robotparser import RobotFileParser

import httpx

from jobcast.errors import TransientError
from jobcast.net import checked_client
from workers.jobs.site_audit import audit_rule
from workers.jobs.site_audit.parse import parse_sitemap
from workers.jobs.site_audit.urls import Origin, normalize

USER_AGENT = "jobcast-site-audit"
# a page body is read up to this size; the rest is not downloaded
MAX_PAGE_BYTES = 5 * 1_048_576
MAX_SITEMAP_FILES = 5
MAX_REDIRECT_HOPS = 5
# connecting, the lookup included, may take this long at most (and never more than the
# request's own time limit, which bounds each read and the whole request)
CONNECT_TIMEOUT_S = 5.0
HTML_TYPES = ("text/html", "application/xhtml+xml")


def open_client(*, concurrency: int, timeout_s: float) -> httpx.AsyncClient:
    """The audit's HTTP client: ``concurrency`` connections at most, explicit timeouts."""
    return checked_client(
        audit_rule(),
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
        limits=httpx.Limits(max_connections=concurrency),
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
        },
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP exchange as the audit sees it: a status, or the error in its place."""

    url: str
    status: int | None = None
    reason: str = ""
    content_type: str = ""
    location: str | None = None
    body: bytes = b""
    encoding: str | None = None
    size_bytes: int | None = None
    elapsed_ms: int = 0
    error: str | None = None

    @property
    def is_redirect(self) -> bool:
        return self.status is not None and 300 <= self.status < 400 and bool(self.location)

    @property
    def is_html(self) -> bool:
        if self.content_type:
            return self.content_type in HTML_TYPES
        start = self.body[:64].lstrip().lower()
        return start.startswith((b"<!doctype html", b"<html"))

    @property
    def failed(self) -> bool:
        return self.error is not None or (self.status is not None and self.status >= 400)

    def redirect_target(self) -> str | None:
        return normalize(urljoin(self.url, self.location)) if self.is_redirect else None

    def text(self) -> str:
        try:
            return self.body.decode(self.encoding or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", errors="replace")


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _describe(exc: httpx.HTTPError | httpx.InvalidURL) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    detail = str(exc) or type(exc).__name__
    return f"connection failed: {detail}" if isinstance(exc, httpx.ConnectError) else detail


class Fetcher:
    """Every request of one audit: at most ``concurrency`` at once, each within ``timeout_s``."""

    def __init__(
        self, client: httpx.AsyncClient, origin: Origin, *, concurrency: int, timeout_s: float
    ) -> None:
        self._client = client
        self._origin = origin
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout_s = timeout_s

    async def get(self, url: str) -> Answer:
        async with self._slots:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._timeout_s):
                    return await self._exchange(url, started)
            except TimeoutError:
                error = f"no answer within {self._timeout_s:g} s"
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                error = _describe(exc)
            return Answer(url, elapsed_ms=_ms_since(started), error=error)

    async def get_following(self, url: str) -> Answer:
        """GET, following redirects that stay on the site (for robots.txt and sitemaps)."""
        answer = await self.get(url)
        for _ in range(MAX_REDIRECT_HOPS):
            target = answer.redirect_target()
            if target is None or not self._origin.owns(target):
                break
            answer = await self.get(target)
        return answer

    async def _exchange(self, url: str, started: float) -> Answer:
        async with self._client.stream("GET", url) as response:
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            body, size = b"", _content_length(response)
            # pages, robots.txt and sitemaps are read; other bodies (images, archives) are not
            if _is_text(content_type):
                body = await _read_capped(response)
                size = len(body)
            return Answer(
                url,
                status=response.status_code,
                reason=response.reason_phrase,
                content_type=content_type,
                location=response.headers.get("location"),
                body=body,
                encoding=response.charset_encoding,
                size_bytes=size,
                elapsed_ms=_ms_since(started),
            )


def _is_text(content_type: str) -> bool:
    return (
        not content_type
        or content_type.startswith("text/")
        or content_type in HTML_TYPES
        or content_type.endswith(("/xml", "+xml"))
    )


def _content_length(response: httpx.Response) -> int | None:
    raw = response.headers.get("content-length", "")
    return int(raw) if raw.isdigit() else None


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_PAGE_BYTES:
            break
    return b"".join(chunks)[:MAX_PAGE_BYTES]


# robots.txt and the sitemap


async def load_robots(fetcher: Fetcher, origin: Origin) -> RobotFileParser:
    """The site's robots rules: 401 or 403 forbid everything, another 4xx means no rules
    (as ``RobotFileParser.read`` has it); a 5xx is worth retrying, not a reason to guess."""
    robots = RobotFileParser(origin.url("/robots.txt"))
    answer = await fetcher.get_following(origin.url("/robots.txt"))
    if answer.error is not None or answer.status is None:
        raise TransientError(f"{origin.host} could not be reached: {answer.error}")
    if answer.status in (401, 403):
        robots.parse(["User-agent: *", "Disallow: /"])
    elif answer.status >= 500:
        raise TransientError(
            f"{origin.url('/robots.txt')} answered {answer.status}: the site is having trouble"
        )
    elif answer.status == 200:
        robots.parse(answer.text().splitlines())
    else:  # missing, or moved off the site: no rules
        robots.parse([])
    return robots


async def read_sitemaps(
    fetcher: Fetcher, origin: Origin, robots: RobotFileParser, limit: int
) -> list[str]:
    """Up to ``limit`` pages of this site listed in its sitemaps (those robots.txt names,
    else /sitemap.xml), following sitemap indexes within ``MAX_SITEMAP_FILES`` files."""
    named = [u for u in map(normalize, robots.site_maps() or []) if u and origin.owns(u)]
    queue = deque(named or [origin.url("/sitemap.xml")])
    pages: dict[str, None] = {}
    read = 0
    while queue and read < MAX_SITEMAP_FILES and len(pages) < limit:
        answer = await fetcher.get_following(queue.popleft())
        read += 1
        if answer.status != 200:
            continue
        locations, is_index = parse_sitemap(answer.text())
        for url in map(normalize, locations):
            if url and origin.owns(url):
                if is_index:
                    queue.append(url)
                else:
                    pages[url] = None
    return list(pages)[:limit]
