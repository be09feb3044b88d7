"""The bytes a first visit to a page moves: the page and every file it loads.

Fetches the page, then each stylesheet, script, icon and ES module import it reaches
(recursively), once asking for gzip and once not, and prints the totals. Runs against
the app in this process (no server, no database: static files need neither), or a
running server given as ``--url``.

    python -m bench.page_weight [--url http://127.0.0.1:8000] [/ /admin]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip as gzip_module
import re
from urllib.parse import urljoin, urlsplit

import httpx

# what a page or a file refers to: href/src attributes, CSS url(), module imports
_REFS = (
    re.compile(r"""(?:href|src)="(/static/[^"]+)\""""),
    re.compile(r"""url\(["']?([^"')]+)["']?\)"""),
    re.compile(r"""(?:from|import)\s*\(?\s*["'](\.{1,2}/[^"']+)["']"""),
)


def references(url: str, text: str) -> set[str]:
    found: set[str] = set()
    for pattern in _REFS:
        for ref in pattern.findall(text):
            if ref.startswith("data:") or ref.startswith("#"):
                continue
            target = urljoin(url, ref)
            if urlsplit(target).path.startswith("/static/"):
                found.add(urlsplit(target)._replace(scheme="", netloc="").geturl())
    return found


def _gzipped(response: httpx.Response) -> bool:
    return response.headers.get("content-encoding", "") == "gzip"


async def weigh(client: httpx.AsyncClient, page: str, gzip: bool) -> tuple[int, int]:
    """Bytes on the wire and the number of files for a first visit to ``page``."""
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    todo, seen, total = [page], set(), 0
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        async with client.stream("GET", path, headers=headers) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        total += len(raw)
        if response.status_code != 200:
            continue
        kind = response.headers.get("content-type", "")
        if any(k in kind for k in ("html", "css", "javascript")):
            body = gzip_module.decompress(raw) if _gzipped(response) else raw
            text = body.decode(errors="replace")
            todo.extend(references(f"http://page{path}", text) - seen)
    return total, len(seen)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: the app in process)")
    parser.add_argument("pages", nargs="*", default=["/", "/admin"])
    args = parser.parse_args()
    if args.url:
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport()
        base = args.url
    else:
        from server.app import create_app

        transport = httpx.ASGITransport(app=create_app())
        base = "http://127.0.0.1"
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        for page in args.pages:
            plain, files = await weigh(client, page, gzip=False)
            packed, _ = await weigh(client, page, gzip=True)
            print(
                f"{page}: {files} files, {plain / 1024:.1f} KiB plain, "
                f"{packed / 1024:.1f} KiB with gzip accepted"
            )


if __name__ == "__main__":
    asyncio.run(main())
