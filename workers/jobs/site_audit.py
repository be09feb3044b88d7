"""``site_audit``: crawl one site within bounds and report what a visitor would trip over.

The crawl stays on the start URL's site (same scheme, host and port), honours
robots.txt for the user agent ``jobcast-site-audit``, takes the sitemap's pages
as extra starting points, and never has more than ``concurrency`` requests open.
The HTTP client does not follow redirects: the crawl does, so that every hop is
recorded and a redirect cannot lead it off the site.

The URL is user input fetched from inside the service's network, so only public
hosts are audited: ``localhost`` or a literal private address is refused at
submit (422), the host's addresses are checked when the crawl starts, and the
address each response came from is checked again (DNS may change meanwhile).
``JOBCAST_AUDIT_HOSTS`` lists hosts that may be audited although they are not
public (an intranet host; loopback in tests).
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import os
import re
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator
from selectolax.lexbor import LexborHTMLParser, LexborNode

from jobcast.errors import PermanentError, TransientError
from jobcast.registry import JobContext, JobType, Step

USER_AGENT = "jobcast-site-audit"
SLOW_PAGE_MS = 1000
# a page body is read up to this size; the rest is not downloaded
MAX_PAGE_BYTES = 5 * 1_048_576
MAX_SITEMAP_FILES = 5
MAX_REDIRECT_HOPS = 5
# headings kept per level and characters kept per text, so one odd page cannot bloat the report
MAX_HEADINGS = 20
MAX_TEXT_CHARS = 300
# skipped URLs listed in the result; all of them are counted
MAX_LISTED_SKIPS = 200
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_NOT_LINKS = ("mailto:", "javascript:", "tel:", "data:", "#")


# which hosts may be audited


def allowed_hosts() -> frozenset[str]:
    """Hosts that may be audited although they are not public (``JOBCAST_AUDIT_HOSTS``).

    Read from the environment at each use: the web process checks it when it validates the
    input, the worker when the crawl starts, each in its own environment.
    """
    raw = os.environ.get("JOBCAST_AUDIT_HOSTS", "")
    return frozenset(h.strip().strip("[]").lower() for h in raw.split(",") if h.strip())


def is_public_address(address: str) -> bool:
    """Whether an IP address is reachable on the internet: no loopback, private or link-local."""
    ip = ipaddress.ip_address(address)
    return ip.is_global and not ip.is_multicast


def literal_refusal(host: str) -> str | None:
    """Why this host may not be audited, judged without DNS (at submit); None when it may be."""
    host = host.strip("[]").lower()
    if host in allowed_hosts():
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is not a public address"
    try:
        public = is_public_address(host)
    except ValueError:
        return None  # a name: its addresses are checked when the crawl starts
    return None if public else f"{host} is not a public address"


async def ensure_public(host: str, port: int) -> None:
    """Refuse a host that resolves to any non-public address, unless it is allowed."""
    if host in allowed_hosts():
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TransientError(f"{host} could not be resolved ({exc.strerror})") from None
    private = sorted({str(i[4][0]) for i in infos if not is_public_address(str(i[4][0]))})
    if private:
        raise PermanentError(
            f"{host} is not a public address (it resolves to {private[0]}): "
            "only public sites can be audited"
        )


# URLs


def normalize(url: str) -> str | None:
    """The URL as the crawl compares URLs (no fragment, no credentials, no default port).

    None when it is not an http(s) URL with a host.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


@dataclass(frozen=True, slots=True)
class Origin:
    """The site being audited: a URL belongs to it when scheme, host and port all match."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return cls(scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS[scheme])

    def owns(self, url: str) -> bool:
        return Origin.of(url) == self

    def url(self, path: str) -> str:
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != _DEFAULT_PORTS[self.scheme]:
            netloc = f"{netloc}:{self.port}"
        return f"{self.scheme}://{netloc}{path}"


# what a page says


@dataclass(frozen=True, slots=True)
class PageContent:
    title: str | None
    description: str | None
    h1: list[str]
    h2: list[str]
    # absolute, normalized http(s) links in page order, each once
    links: list[str]


def _text(node: LexborNode) -> str:
    return " ".join(node.text(deep=True, separator=" ").split())[:MAX_TEXT_CHARS]


def parse_page(markup: str, page_url: str) -> PageContent:
    """Title, meta description, headings and links of an HTML page."""
    tree = LexborHTMLParser(markup)
    base_node = tree.css_first("base[href]")
    base = urljoin(page_url, base_node.attributes.get("href") or "") if base_node else page_url
    title_node = tree.css_first("title")
    description = next(
        (
            " ".join((m.attributes.get("content") or "").split())[:MAX_TEXT_CHARS]
            for m in tree.css("meta[name]")
            if (m.attributes.get("name") or "").lower() == "description"
        ),
        None,
    )
    links: dict[str, None] = {}
    for anchor in tree.css("a[href], area[href]"):
        href = (anchor.attributes.get("href") or "").strip()
        if not href or href.lower().startswith(_NOT_LINKS):
            continue
        link = normalize(urljoin(base, href))
        if link is not None:
            links[link] = None
    return PageContent(
        title=(_text(title_node) or None) if title_node else None,
        description=description or None,
        h1=[t for t in (_text(n) for n in tree.css("h1")[:MAX_HEADINGS]) if t],
        h2=[t for t in (_text(n) for n in tree.css("h2")[:MAX_HEADINGS]) if t],
        links=list(links),
    )


_LOC = re.compile(
    r"<(?:\w+:)?loc>\s*(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?\s*</(?:\w+:)?loc>", re.I | re.S
)
_SITEMAP_INDEX = re.compile(r"<(?:\w+:)?sitemapindex\b", re.I)


def parse_sitemap(text: str) -> tuple[list[str], bool]:
    """The ``<loc>`` URLs of a sitemap, and whether it is an index of further sitemaps.

    A pattern rather than an XML parser: only ``<loc>`` matters here, and a pattern
    cannot be made to expand entities without bound.
    """
    return [html.unescape(m) for m in _LOC.findall(text)], bool(_SITEMAP_INDEX.search(text))


# fetching


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
            return self.content_type in _HTML_TYPES
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
        self._trusted = origin.host in allowed_hosts()

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
            self._check_peer(response)
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

    def _check_peer(self, response: httpx.Response) -> None:
        """Stop when the answer came from a non-public address (the name was re-pointed)."""
        if self._trusted:
            return
        stream = response.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if peer and not is_public_address(str(peer[0])):
            raise PermanentError(
                f"{self._origin.host} now points to {peer[0]}, which is not a public address"
            )


def _is_text(content_type: str) -> bool:
    return (
        not content_type
        or content_type.startswith("text/")
        or content_type in _HTML_TYPES
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


# the crawl


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


# the report


def audit_score(
    *,
    crawled: int,
    content_pages: int,
    with_broken_links: int,
    redirects: int,
    slow: int,
    missing_title: int,
    missing_description: int,
) -> int:
    """0 to 100: 100 less a penalty per problem, weighted by the share of pages it touches.

    score = 100 - 40 B - 10 R - 20 S - 15 T - 15 D, rounded and at least 0, where
    B, T, D are the shares of content pages (HTML answered 2xx) with a broken link, without
    a title, without a meta description, and R, S the shares of all pages crawled that
    redirect or are slow. A site failing every check scores 0.
    """

    def share(part: int, whole: int) -> float:
        return part / whole if whole else 0.0

    penalty = (
        40 * share(with_broken_links, content_pages)
        + 10 * share(redirects, crawled)
        + 20 * share(slow, crawled)
        + 15 * share(missing_title, content_pages)
        + 15 * share(missing_description, content_pages)
    )
    return max(0, round(100 - penalty))


def _final(pages: dict[str, Page], url: str) -> Answer | None:
    """The answer a link to ``url`` ends at, through recorded redirects; None if unknown."""
    visited: set[str] = set()
    while url in pages and url not in visited:
        visited.add(url)
        answer = pages[url].answer
        target = answer.redirect_target()
        if target is None or target not in pages:
            return answer
        url = target
    return Answer(url, error="redirect loop") if url in visited else None


def _chain(pages: dict[str, Page], url: str) -> list[dict[str, Any]]:
    """The redirect hops starting at ``url``, each ``{from, to, status}``."""
    hops: list[dict[str, Any]] = []
    while url in pages and len(hops) <= MAX_REDIRECT_HOPS:
        answer = pages[url].answer
        target = answer.redirect_target()
        if target is None:
            break
        hops.append({"from": url, "to": target, "status": answer.status})
        url = target
    return hops


@dataclass(frozen=True, slots=True)
class Findings:
    """What the links and redirects of the crawled pages come to, per page URL."""

    broken: dict[str, list[dict[str, Any]]]
    chains: dict[str, list[dict[str, Any]]]


def analyze(pages: dict[str, Page]) -> Findings:
    """Judge every link to a crawled page by where it ends: an error answer or a failed
    request makes it broken. Links to pages that were not fetched are not judged."""
    broken: dict[str, list[dict[str, Any]]] = {}
    for page in pages.values():
        for link in page.content.links if page.content else []:
            final = _final(pages, link)
            if final is not None and final.failed:
                broken.setdefault(page.url, []).append(
                    {"page": page.url, "url": link, "status": final.status, "error": final.error}
                )
    chains = {url: chain for url in pages if (chain := _chain(pages, url))}
    return Findings(broken, chains)


def _page_view(page: Page, findings: Findings) -> dict[str, Any]:
    answer, content = page.answer, page.content
    links = content.links if content else []
    on_site = sum(1 for link in links if Origin.of(link) == Origin.of(page.url))
    return {
        "url": page.url,
        "depth": page.depth,
        "status": answer.status,
        "error": answer.error,
        "response_ms": answer.elapsed_ms,
        "size_bytes": answer.size_bytes,
        "content_type": answer.content_type or None,
        "title": content.title if content else None,
        "description": content.description if content else None,
        "h1": content.h1 if content else [],
        "h2": content.h2 if content else [],
        "links": {"internal": on_site, "external": len(links) - on_site},
        "broken_links": [
            {"url": b["url"], "status": b["status"], "error": b["error"]}
            for b in findings.broken.get(page.url, [])
        ],
        "redirects": findings.chains.get(page.url, []),
        "slow": answer.elapsed_ms > SLOW_PAGE_MS,
    }


def build_report(start: str, crawl: Crawl, findings: Findings) -> dict[str, Any]:
    """The result: a summary with the score, then every page, broken link and redirect."""
    pages = crawl.pages
    content = [p for p in pages.values() if p.content is not None]
    missing_title = [p.url for p in content if p.content and not p.content.title]
    missing_description = [p.url for p in content if p.content and not p.content.description]
    slow = [p.url for p in pages.values() if p.answer.elapsed_ms > SLOW_PAGE_MS]
    broken_links = [link for links in findings.broken.values() for link in links]
    redirects = [chain[0] for chain in findings.chains.values()]
    skipped = crawl.skipped()
    score = audit_score(
        crawled=len(pages),
        content_pages=len(content),
        with_broken_links=sum(1 for p in content if p.url in findings.broken),
        redirects=len(redirects),
        slow=len(slow),
        missing_title=len(missing_title),
        missing_description=len(missing_description),
    )
    return {
        "url": start,
        "summary": {
            "pages_crawled": len(pages),
            "broken_links": len(broken_links),
            "redirects": len(redirects),
            "slow_pages": slow,
            "missing_title": missing_title,
            "missing_description": missing_description,
            "skipped": len(skipped),
            "score": score,
        },
        "pages": [_page_view(page, findings) for page in pages.values()],
        "broken_links": broken_links,
        "redirects": redirects,
        "skipped": skipped[:MAX_LISTED_SKIPS],
    }


# the job type


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


async def run_site_audit(job: JobContext, params: SiteAuditInput) -> dict[str, Any]:
    start = normalize(str(params.url))
    if start is None:
        raise PermanentError(f"{params.url} is not an http or https URL")
    origin = Origin.of(start)
    async with httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(params.timeout_s),
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
        },
        limits=httpx.Limits(max_connections=params.concurrency),
    ) as client:
        fetcher = Fetcher(
            client, origin, concurrency=params.concurrency, timeout_s=params.timeout_s
        )
        async with job.step("robots"):
            await job.progress(0, f"Checking {origin.host}")
            await ensure_public(origin.host, origin.port)
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


JOB_TYPES = (
    JobType(
        name="site_audit",
        title="Site audit",
        input_model=SiteAuditInput,
        run=run_site_audit,
        steps=STEPS,
        timeout_s=600,
        retry_on_timeout=False,
        concurrency=2,
        estimate=lambda params: 2.0 + params.max_pages * 0.3,
        scale=lambda params: float(params.max_pages),
    ),
)
