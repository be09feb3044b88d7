"""Outgoing calls connect to the address that was checked (DNS rebinding), never to a
private one: real HTTP servers on two loopback addresses, the same port on each.

``rebind.test`` resolves to ``CHECKED`` on its first lookup and to ``REBOUND`` on every
later one, as a rebinding DNS server answers; ``CHECKED`` counts as a public address for
the test, ``REBOUND`` stays what it is, a private one. A call that looked the name up
twice (once to check, once to connect) would reach the server on ``REBOUND``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobcast.addresses import AddressRule, TargetRefused
from jobcast.net import checked_client
from jobcast.webhooks import SIGNATURE_HEADER, call, open_client, verify
from workers.jobs.site_audit import SiteAuditInput, run_site_audit

CHECKED = "127.0.0.1"
REBOUND = "127.0.0.2"
NAME = "rebind.test"
TIMEOUT = httpx.Timeout(5.0)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    host: str
    body: bytes
    signature: str | None


class Server(ThreadingHTTPServer):
    """Answers every request (a page, or a redirect to ``/hop``'s target); remembers each."""

    daemon_threads = True

    def __init__(self, address: str, port: int, hop_to: str = "") -> None:
        super().__init__((address, port), _Handler)
        self.hop_to = hop_to
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    def requests(self) -> list[Seen]:
        with self.lock:
            return list(self.seen)


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.seen.append(
                Seen(self.command, self.path, self.headers["Host"], body,
                     self.headers[SIGNATURE_HEADER])
            )  # fmt: skip
        if self.path == "/hop":
            self.send_response(302)
            self.send_header("Location", self.server.hop_to)
            data = b""
        elif self.path == "/robots.txt":
            self.send_response(404)
            data = b"no rules"
        else:
            self.send_response(200)
            data = b"<!doctype html><html><head><title>Here</title></head><body></body></html>"
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving(
    server: Server, wrap: Callable[[socket.socket], socket.socket] | None = None
) -> Iterator[Server]:
    if wrap is not None:
        server.socket = wrap(server.socket)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    """The server on the checked address and the one on the rebound address, one port."""
    with serving(Server(CHECKED, 0)) as checked:
        port = checked.server_address[1]
        with serving(Server(REBOUND, port)) as rebound:
            checked.hop_to = f"http://{REBOUND}:{port}/"
            yield checked, rebound


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Rebinding DNS for ``rebind.test``; the addresses it gave, in order."""
    real_getaddrinfo = socket.getaddrinfo
    given: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (NAME, NAME.encode()):  # anyio asks with the name as bytes
            host = CHECKED if not given else REBOUND
            given.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    is_global = ipaddress.IPv4Address.is_global
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(
        ipaddress.IPv4Address,
        "is_global",
        property(lambda ip: str(ip) == CHECKED or is_global.__get__(ip)),
    )
    return given


async def test_a_name_is_dialled_at_the_address_it_was_checked_at(
    servers: tuple[Server, Server], lookups: list[str]
) -> None:
    checked, rebound = servers
    port = checked.server_address[1]
    async with checked_client(AddressRule(), timeout=TIMEOUT) as client:
        answer = await client.get(f"http://{NAME}:{port}/page")
    assert answer.status_code == 200
    assert lookups == [CHECKED]  # one lookup: the one that was checked
    assert [(r.method, r.path, r.host) for r in checked.requests()] == [
        ("GET", "/page", f"{NAME}:{port}")
    ]
    # a new connection looks the name up again, and is refused where it now points
    async with checked_client(AddressRule(), timeout=TIMEOUT) as client:
        with pytest.raises(TargetRefused, match=rf"{NAME} is not a public address .*{REBOUND}"):
            await client.get(f"http://{NAME}:{port}/again")
    assert rebound.requests() == []


async def test_a_redirect_to_a_private_address_is_refused(
    servers: tuple[Server, Server], lookups: list[str]
) -> None:
    checked, rebound = servers
    port = checked.server_address[1]
    async with checked_client(AddressRule(), timeout=TIMEOUT, follow_redirects=True) as client:
        with pytest.raises(TargetRefused, match=rf"{REBOUND} is not a public address"):
            await client.get(f"http://{NAME}:{port}/hop")
    assert [r.path for r in checked.requests()] == ["/hop"]
    assert rebound.requests() == []


async def test_a_webhook_is_posted_to_the_checked_address_and_no_further(
    servers: tuple[Server, Server], lookups: list[str]
) -> None:
    checked, rebound = servers
    port = checked.server_address[1]
    async with open_client(frozenset()) as client:
        assert await call(client, f"http://{NAME}:{port}/hook", b'{"a": 1}', "s3cret") == (
            200,
            None,
        )
        # a receiver that redirects to a private address is not followed there
        assert await call(client, f"http://{NAME}:{port}/hop", b"{}", "s3cret") == (
            302,
            "answered 302",
        )
    hook, _ = checked.requests()
    assert (hook.method, hook.path, hook.host, hook.body) == (
        "POST",
        "/hook",
        f"{NAME}:{port}",
        b'{"a": 1}',
    )
    assert hook.signature is not None and verify("s3cret", hook.body, hook.signature)
    async with open_client(frozenset()) as client:  # a new connection: the name now rebinds
        status, error = await call(client, f"http://{NAME}:{port}/hook", b"{}", "s3cret")
    assert status is None and error is not None
    assert error.startswith("the target is not an allowed host") and REBOUND in error
    assert rebound.requests() == []


async def test_a_webhook_list_names_the_only_hosts_called(
    servers: tuple[Server, Server], lookups: list[str]
) -> None:
    checked, rebound = servers
    port = checked.server_address[1]
    async with open_client(frozenset({NAME})) as client:
        assert await call(client, f"http://{REBOUND}:{port}/", b"{}", "s") == (
            None,
            f"the target is not an allowed host: {REBOUND} is not among the allowed hosts",
        )
        assert (await call(client, f"http://{NAME}:{port}/", b"{}", "s"))[0] == 200
    assert rebound.requests() == [] and [r.path for r in checked.requests()] == ["/"]


class _Job:
    """What run code reports through, reduced to nothing: this test watches the network."""

    attempt = 1

    @contextlib.asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        yield

    async def progress(self, percent: float, message: str | None = None) -> None:
        pass


async def test_a_site_audit_never_reaches_a_rebound_address(
    servers: tuple[Server, Server], lookups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBCAST_AUDIT_HOSTS", raising=False)
    checked, rebound = servers
    port = checked.server_address[1]
    params = SiteAuditInput.model_validate(
        {"url": f"http://{NAME}:{port}/", "max_pages": 3, "concurrency": 1}
    )
    try:
        report = await run_site_audit(_Job(), params)
    except TargetRefused:  # a second connection, refused where the name then pointed
        report = None
    assert rebound.requests() == [], "the audit reached the rebound address"
    assert checked.requests()[0].path == "/robots.txt"
    if report is not None:
        assert report["summary"]["pages_crawled"] >= 1


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("certified", [NAME, "other.test"])
async def test_tls_checks_the_certificate_against_the_name_not_the_address(
    certified: str, tmp_path: Path, lookups: list[str]
) -> None:
    cert, key = _certificate(tmp_path, certified)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    trusted = ssl.create_default_context(cafile=str(cert))

    def wrap(sock: socket.socket) -> socket.socket:
        return server_tls.wrap_socket(sock, server_side=True)

    with serving(Server(CHECKED, 0), wrap) as server:
        url = f"https://{NAME}:{server.server_address[1]}/"
        async with checked_client(AddressRule(), timeout=TIMEOUT, verify=trusted) as client:
            if certified == NAME:
                assert (await client.get(url)).status_code == 200
                assert server.requests()[0].host == f"{NAME}:{server.server_address[1]}"
            else:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.get(url)
    assert lookups == [CHECKED]
