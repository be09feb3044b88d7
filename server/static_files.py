"""The browser's files: versioned, cacheable and compressed.

Every file under ``static/`` is served with a strong ETag (a hash of what is sent)
and, when the browser accepts gzip, compressed once and kept. A page (index.html,
admin.html) names each file it loads with ``?v=<hash>``, and each ES module names
the modules it imports the same way, rewritten here as they are served: a module's
hash covers its imports' hashes, so a change anywhere below a page gives it new
URLs. A URL whose ``v`` is the file's hash is cached for a year (``immutable``);
anything else (a page, a bare URL, an old hash) with ``no-cache``: the browser asks
again and gets a 304 while nothing changed. A file edited on disk is read again on
the next request (its size and mtime are checked each time), so a running server
never serves an old file under a new name or the reverse.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os.path
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from jobcast.errors import NotFound
from server.auth import COOKIE_NAME

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# compressing less than this saves nothing worth a header
_MIN_GZIP_BYTES = 512
_TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml")

# a page's references to its files, and a module's relative imports
_PAGE_REF = re.compile(rb'((?:href|src)=")(/static/[^"?#]+)(")')
_IMPORT = re.compile(rb"""((?:\bfrom|\bimport)\s*\(?\s*["'])(\.{1,2}/[^"'?#]+\.js)(["'])""")


@dataclass(frozen=True, slots=True)
class Asset:
    """One file as served: its bytes, their gzip (when worth it), hash and type."""

    body: bytes
    gzipped: bytes | None
    version: str
    media_type: str
    stamp: tuple[int, int]
    deps: tuple[tuple[str, str], ...]  # (path, version) of the files it names


def _media_type(path: Path) -> str:
    if path.suffix in (".js", ".mjs"):
        return "text/javascript; charset=utf-8"
    if path.suffix == ".ts":  # TypeScript declarations to read (the guess is MPEG video)
        return "text/plain; charset=utf-8"
    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if path.is_file() else None


class StaticSite:
    """The files of one folder, as an ASGI app to mount at ``/static``."""

    def __init__(self, root: Path, prefix: str = "/static") -> None:
        self.root = root.resolve()
        self.prefix = prefix
        self._assets: dict[str, Asset] = {}

    def _file(self, rel: str) -> Path | None:
        path = (self.root / rel.lstrip("/")).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            return None
        return path

    def asset(self, rel: str, visiting: frozenset[str] = frozenset()) -> Asset | None:
        """The file at ``rel`` (relative to the folder) as served, or None."""
        path = self._file(rel)
        stamp = _stamp(path) if path is not None else None
        if path is None or stamp is None:
            return None
        key = str(path.relative_to(self.root))
        cached = self._assets.get(key)
        if cached is not None and cached.stamp == stamp and self._deps_fresh(cached, visiting):
            return cached
        made = self._build(path, key, stamp, visiting | {key})
        self._assets[key] = made
        return made

    def _deps_fresh(self, asset: Asset, visiting: frozenset[str]) -> bool:
        for dep, version in asset.deps:
            if dep in visiting:
                continue
            found = self.asset(dep, visiting)
            if found is None or found.version != version:
                return False
        return True

    def _build(
        self, path: Path, key: str, stamp: tuple[int, int], visiting: frozenset[str]
    ) -> Asset:
        raw = path.read_bytes()
        media_type = _media_type(path)
        deps: list[tuple[str, str]] = []
        if path.suffix in (".js", ".mjs"):
            folder = str(Path(key).parent)

            def module(match: re.Match[bytes]) -> bytes:
                dep = str(Path(folder, match[2].decode()))
                return self._versioned(match, dep, visiting, deps)

            raw = _IMPORT.sub(module, raw)
        elif path.suffix == ".html":
            raw = self.rewrite_page(raw, visiting, deps)
        version = hashlib.sha256(raw).hexdigest()[:16]
        packed = None
        if len(raw) >= _MIN_GZIP_BYTES and media_type.startswith(_TEXT_TYPES):
            packed = gzip.compress(raw, compresslevel=9, mtime=0)
            if len(packed) >= len(raw):
                packed = None
        return Asset(raw, packed, version, media_type, stamp, tuple(deps))

    def _versioned(
        self,
        match: re.Match[bytes],
        dep: str,
        visiting: frozenset[str],
        deps: list[tuple[str, str]],
    ) -> bytes:
        dep = os.path.normpath(dep)
        if dep in visiting:  # an import cycle: that edge stays unversioned
            return match[0]
        found = self.asset(dep, visiting)
        if found is None:
            return match[0]
        deps.append((dep, found.version))
        return match[1] + match[2] + b"?v=" + found.version.encode() + match[3]

    def rewrite_page(
        self,
        html: bytes,
        visiting: frozenset[str] = frozenset(),
        deps: list[tuple[str, str]] | None = None,
    ) -> bytes:
        """A page with ``?v=<hash>`` on each of its ``/static/`` files."""
        deps = [] if deps is None else deps
        prefix = self.prefix.encode() + b"/"

        def ref(match: re.Match[bytes]) -> bytes:
            return self._versioned(match, match[2][len(prefix) :].decode(), visiting, deps)

        return _PAGE_REF.sub(ref, html)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method not in ("GET", "HEAD"):
            await Response(status_code=405, headers={"Allow": "GET, HEAD"})(scope, receive, send)
            return
        rel = get_route_path(scope)
        asset = self.asset(rel)
        if asset is None:
            raise NotFound("no such file")
        wanted = request.query_params.get("v")
        cache = IMMUTABLE if wanted == asset.version else REVALIDATE
        await respond(request, asset, cache)(scope, receive, send)


def accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def respond(request: Request, asset: Asset, cache: str) -> Response:
    """The asset for this request: 304 when the browser has it, gzip when it takes it."""
    etag = f'"{asset.version}"'
    headers = {"ETag": etag, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    sent = request.headers.get("if-none-match", "")
    if etag in [tag.strip().removeprefix("W/") for tag in sent.split(",")]:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and accepts_gzip(request):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(status_code=200, headers=headers, media_type=asset.media_type)
    return Response(body, headers=headers, media_type=asset.media_type)


def without_session(asset: Asset) -> Asset:
    """The page for a browser with no session cookie: ``<html data-session="none">`` tells
    the client to make its session at once, rather than learn it lacks one from a 401."""
    body = asset.body.replace(b"<html", b'<html data-session="none"', 1)
    packed = gzip.compress(body, compresslevel=9, mtime=0) if asset.gzipped else None
    return replace(asset, body=body, gzipped=packed, version=asset.version + "-n")


def page(site: StaticSite, name: str) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of a page of the folder (index.html, admin.html): its files versioned,
    the page itself revalidated on every visit."""
    variants: dict[str, Asset] = {}

    async def endpoint(request: Request) -> Response:
        asset = site.asset(name)
        if asset is None:
            raise NotFound("no such page")
        if COOKIE_NAME not in request.cookies:
            if asset.version not in variants:
                variants.clear()
                variants[asset.version] = without_session(asset)
            asset = variants[asset.version]
        response = respond(request, asset, REVALIDATE)
        response.headers["Vary"] = "Accept-Encoding, Cookie"
        return response

    return endpoint
