"""What the crawl comes to: every link judged by where it ends, redirect chains, the score,
and the result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.jobs.site_audit.crawl import Crawl, Page
from workers.jobs.site_audit.fetch import MAX_REDIRECT_HOPS, Answer
from workers.jobs.site_audit.urls import Origin

SLOW_PAGE_MS = 1000
# skipped URLs listed in the result; all of them are counted
MAX_LISTED_SKIPS = 200


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
