"""The browser's files over HTTP from a real web process: versioned, cached, compressed.

What a page names is fetched as the browser would: each ``/static/`` file and each
module import carries ``?v=`` equal to the file's ETag and is cached for a year; the
page itself and a bare URL revalidate (304); gzip is sent only to who accepts it and
unpacks to the very bytes sent plain.
"""

from __future__ import annotations

import gzip
import re

import httpx

from tests.support import Stack

_REF = re.compile(r'(?:href|src)="(/static/[^"]+)"')
_IMPORT = re.compile(r'from "(\./[^"]+)"')
IMMUTABLE = "public, max-age=31536000, immutable"


def refs(html: str) -> list[str]:
    found = _REF.findall(html)
    assert found, "the page names no static file"
    return found


async def test_a_page_names_each_file_by_its_version_and_each_is_cached_long(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        for path in ("/", "/admin"):
            page = await client.get(path)
            assert page.status_code == 200
            assert page.headers["cache-control"] == "no-cache"
            for ref in refs(page.text):
                base, _, version = ref.partition("?v=")
                assert re.fullmatch(r"[0-9a-f]{16}", version), ref
                versioned = await client.get(ref)
                assert versioned.status_code == 200, ref
                assert versioned.headers["cache-control"] == IMMUTABLE, ref
                assert versioned.headers["etag"] == f'"{version}"', ref
                bare = await client.get(base)
                assert bare.headers["cache-control"] == "no-cache", base
                stale = await client.get(f"{base}?v=0000000000000000")
                assert stale.headers["cache-control"] == "no-cache", base


async def test_module_imports_are_versioned_too(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        app = await client.get("/static/app.js")
        imports = _IMPORT.findall(app.text)
        assert imports, "app.js imports nothing"
        for spec in imports:
            path, _, version = spec.partition("?v=")
            assert version, f"{spec} has no version"
            module = await client.get(f"/static/{path.removeprefix('./')}", params={"v": version})
            assert module.headers["etag"] == f'"{version}"', spec
            assert module.headers["cache-control"] == IMMUTABLE, spec


async def test_unchanged_files_revalidate_with_304(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        for path in ("/", "/static/app.css", "/static/jobcast.js"):
            first = await client.get(path)
            again = await client.get(path, headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304, path
            assert again.content == b""


async def test_gzip_only_for_who_accepts_it_and_the_same_bytes(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        for path in ("/", "/static/app.css", "/static/jobcast.js", "/static/app.js"):
            plain = await client.get(path, headers={"Accept-Encoding": "identity"})
            assert "content-encoding" not in plain.headers, path
            async with client.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as packed:
                raw = b"".join([chunk async for chunk in packed.aiter_raw()])
            assert packed.headers["content-encoding"] == "gzip", path
            assert "Accept-Encoding" in packed.headers["vary"], path
            assert len(raw) < len(plain.content) / 2, path
            assert gzip.decompress(raw) == plain.content, path
            refused = await client.get(path, headers={"Accept-Encoding": "gzip;q=0"})
            assert "content-encoding" not in refused.headers, path


async def test_a_page_tells_a_browser_without_a_session_so(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        fresh = await client.get("/")
        assert '<html data-session="none"' in fresh.text
        assert (await client.post("/api/sessions")).status_code == 201
        known = await client.get("/")
        assert "data-session" not in known.text
        assert known.headers["etag"] != fresh.headers["etag"]


async def test_no_file_outside_the_folder_and_unknown_ones_404(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        for path in ("/static/nope.js", "/static/../pyproject.toml", "/static/%2e%2e/schema.sql"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found", path
        assert (await client.post("/static/app.js")).status_code == 405
