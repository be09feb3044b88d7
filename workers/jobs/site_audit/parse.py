"""What a page and a sitemap say: title, description, headings, links; the listed URLs."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from workers.jobs.site_audit.urls import normalize

# headings kept per level and characters kept per text, so one odd page cannot bloat the report
MAX_HEADINGS = 20
MAX_TEXT_CHARS = 300
_NOT_LINKS = ("mailto:", "javascript:", "tel:", "data:", "#")


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
