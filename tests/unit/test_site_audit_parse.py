"""The pure parts of ``site_audit``: pages, sitemaps, URLs, the host check, the score."""

from __future__ import annotations

import socket
from typing import Any
from urllib.robotparser import RobotFileParser

import pytest

from jobcast.addresses import TargetRefused
from jobcast.errors import InvalidInput, PermanentError
from jobcast.registry import load_registry
from workers.jobs.site_audit import (
    Answer,
    Crawl,
    Origin,
    Page,
    analyze,
    audit_rule,
    audit_score,
    literal_refusal,
    normalize,
    parse_page,
    parse_sitemap,
)

PAGE = """<!doctype html><html><head>
<title>  Shop
  home </title>
<META NAME="Description" content="Everything  we sell">
<base href="/catalog/">
</head><body>
<h1>Welcome <em>in</em></h1><h2>New</h2><h2></h2><h2>Old</h2>
<a href="shoes">shoes</a> <a href="shoes#sizes">again</a> <a href="/about?x=1">about</a>
<a href="HTTPS://Other.Example:443/a">away</a> <a href="mailto:a@b.c">mail</a>
<a href="javascript:void(0)">js</a> <a href="#top">top</a> <a>no href</a>
<map><area href="/map-area"></map>
</body></html>"""


def test_a_page_gives_its_title_description_headings_and_links() -> None:
    content = parse_page(PAGE, "http://shop.example/")
    assert content.title == "Shop home"
    assert content.description == "Everything we sell"
    assert content.h1 == ["Welcome in"] and content.h2 == ["New", "Old"]
    assert content.links == [
        "http://shop.example/catalog/shoes",
        "http://shop.example/about?x=1",
        "https://other.example/a",
        "http://shop.example/map-area",
    ]


def test_a_bare_page_has_no_title_or_description() -> None:
    content = parse_page("<p>hello</p>", "http://shop.example/")
    assert (content.title, content.description, content.h1, content.links) == (None, None, [], [])


def test_sitemaps_and_sitemap_indexes() -> None:
    urlset = """<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
    <url><loc> https://a.example/one?x=1&amp;y=2 </loc></url>
    <url><loc><![CDATA[https://a.example/two]]></loc></url></urlset>"""
    assert parse_sitemap(urlset) == (
        ["https://a.example/one?x=1&y=2", "https://a.example/two"],
        False,
    )
    index = "<sitemapindex><sitemap><loc>https://a.example/s1.xml</loc></sitemap></sitemapindex>"
    assert parse_sitemap(index) == (["https://a.example/s1.xml"], True)
    assert parse_sitemap("<html>not a sitemap</html>") == ([], False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://Example.COM:80/a#frag", "http://example.com/a"),
        ("https://user:pw@example.com:443", "https://example.com/"),
        ("https://example.com:8443/a?q=1", "https://example.com:8443/a?q=1"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("ftp://example.com/", None),
        ("http://example.com:99999/", None),
        ("/relative", None),
    ],
)
def test_urls_are_compared_normalized(raw: str, expected: str | None) -> None:
    assert normalize(raw) == expected


def test_a_site_is_its_scheme_host_and_port() -> None:
    site = Origin.of("http://example.com/")
    assert site.owns("http://example.com/deep/page") and site.owns("http://EXAMPLE.com:80/")
    assert not site.owns("https://example.com/")
    assert not site.owns("http://example.com:8080/")
    assert not site.owns("http://www.example.com/")
    assert site.url("/robots.txt") == "http://example.com/robots.txt"
    assert Origin.of("http://127.0.0.1:8123/").url("/x") == "http://127.0.0.1:8123/x"


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.9",
        "172.16.5.4",
        "169.254.169.254",
        "0.0.0.0",
        "[::1]",
        "fe80::1",
        "fd00::1",
        "localhost",
        "api.localhost",
    ],
)
def test_non_public_hosts_are_refused_without_an_allowance(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBCAST_AUDIT_HOSTS", raising=False)
    assert literal_refusal(host) == f"{host.strip('[]')} is not a public address"


def test_public_addresses_and_names_pass_the_submit_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBCAST_AUDIT_HOSTS", raising=False)
    assert literal_refusal("93.184.215.14") is None
    assert literal_refusal("2606:2800:21f:cb07:6820:80da:af6b:8b2c") is None
    assert literal_refusal("example.com") is None  # resolved when the crawl starts


def test_an_allowance_lets_a_listed_private_host_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBCAST_AUDIT_HOSTS", " 127.0.0.1 , Intranet.Local,[::1]")
    assert literal_refusal("127.0.0.1") is None
    assert literal_refusal("intranet.local") is None
    assert literal_refusal("::1") is None
    assert literal_refusal("10.0.0.1") == "10.0.0.1 is not a public address"


def test_the_input_model_refuses_a_private_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBCAST_AUDIT_HOSTS", raising=False)
    audit = load_registry().get("site_audit")
    with pytest.raises(InvalidInput) as refused:
        audit.parse_input({"url": "http://192.168.1.1/admin"})
    assert refused.value.details[0]["field"] == "url"
    assert "192.168.1.1 is not a public address" in refused.value.message
    with pytest.raises(InvalidInput, match="max_pages"):
        audit.parse_input({"url": "https://example.com/", "max_pages": 201})
    with pytest.raises(InvalidInput, match="url"):
        audit.parse_input({"url": "ftp://example.com/"})
    with pytest.raises(InvalidInput, match="follow"):
        audit.parse_input({"url": "https://example.com/", "follow": True})
    params = audit.parse_input({"url": "https://example.com"}).model_dump(mode="json")
    assert params == {
        "url": "https://example.com/",
        "max_pages": 50,
        "max_depth": 3,
        "concurrency": 4,
        "timeout_s": 10.0,
    }


async def test_a_name_resolving_to_loopback_is_refused_when_the_crawl_connects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The crawl's connections resolve through the audit's rule: a name not listed whose
    address is loopback is refused, and a listed one is resolved to the address to dial."""
    real = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == "intranet.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    monkeypatch.delenv("JOBCAST_AUDIT_HOSTS", raising=False)
    with pytest.raises(TargetRefused, match=r"intranet.example is not a public address \(it res"):
        await audit_rule().resolve("intranet.example", 80)
    assert issubclass(TargetRefused, PermanentError)  # the audit fails at once, not retried
    monkeypatch.setenv("JOBCAST_AUDIT_HOSTS", "intranet.example")
    assert await audit_rule().resolve("intranet.example", 80) == ["127.0.0.1"]


def test_the_score_weighs_each_problem_by_the_share_of_pages_it_touches() -> None:
    clean = dict(
        crawled=10,
        content_pages=10,
        with_broken_links=0,
        redirects=0,
        slow=0,
        missing_title=0,
        missing_description=0,
    )
    assert audit_score(**clean) == 100
    assert audit_score(**{**clean, "with_broken_links": 5}) == 80
    assert audit_score(**{**clean, "redirects": 1, "slow": 1, "missing_description": 10}) == 82
    worst = dict(
        crawled=4,
        content_pages=4,
        with_broken_links=4,
        redirects=4,
        slow=4,
        missing_title=4,
        missing_description=4,
    )
    assert audit_score(**worst) == 0
    assert audit_score(**{k: 0 for k in clean}) == 100


def _page(
    url: str,
    status: int | None = 200,
    location: str | None = None,
    links: tuple[str, ...] = (),
    error: str | None = None,
) -> Page:
    page = Page(
        url, 1, Answer(url, status=status, location=location, error=error, content_type="text/html")
    )
    if links:
        page.content = parse_page("".join(f'<a href="{u}"></a>' for u in links), url)
    return page


def test_links_are_judged_by_where_their_redirects_end() -> None:
    base = "http://s.example"
    pages = {
        p.url: p
        for p in (
            _page(f"{base}/", links=("/moved", "/ok", "/loop-a", "/down", "/never-fetched")),
            _page(f"{base}/moved", 301, "/gone"),
            _page(f"{base}/gone", 410),
            _page(f"{base}/ok"),
            _page(f"{base}/loop-a", 302, "/loop-b"),
            _page(f"{base}/loop-b", 302, "/loop-a"),
            _page(f"{base}/down", None, error="timed out"),
        )
    }
    findings = analyze(pages)
    broken = {(b["url"], b["status"], b["error"]) for b in findings.broken[f"{base}/"]}
    assert broken == {
        (f"{base}/moved", 410, None),
        (f"{base}/loop-a", None, "redirect loop"),
        (f"{base}/down", None, "timed out"),
    }
    assert findings.chains[f"{base}/moved"] == [
        {"from": f"{base}/moved", "to": f"{base}/gone", "status": 301}
    ]
    assert set(findings.chains) == {f"{base}/moved", f"{base}/loop-a", f"{base}/loop-b"}


def test_a_url_found_too_deep_is_crawled_when_a_shorter_path_turns_up() -> None:
    robots = RobotFileParser()
    robots.parse(["User-agent: *", "Disallow: /private/"])
    crawl = Crawl(
        Origin.of("http://s.example/"),
        robots,
        fetcher=None,  # type: ignore[arg-type]
        max_pages=10,
        max_depth=1,
        concurrency=1,
    )
    crawl.discover("http://s.example/far", 2)
    crawl.discover("http://s.example/private/x", 1)
    assert crawl.skipped() == [
        {"url": "http://s.example/private/x", "reason": "robots"},
        {"url": "http://s.example/far", "reason": "depth"},
    ]
    crawl.discover("http://s.example/far", 1)
    crawl.discover("http://s.example/far", 2)
    assert list(crawl.frontier) == [("http://s.example/far", 1)]
    assert {"url": "http://s.example/far", "reason": "depth"} not in crawl.skipped()
