"""No byte gets a 5xx: arbitrary bytes and text in every parameter of every route.

A real web process is sent, through a raw socket (so nothing on the way tidies the
request up), arbitrary bytes and unicode in one place at a time: each path
parameter, each query parameter (and one it does not know), each field of each JSON
body (and each input field of each job type), each part of an upload, and the
headers a client chooses (If-None-Match, Authorization, the session cookie,
Content-Type, Origin). The values include NUL, lone surrogates, overlong UTF-8
(``%C0%80``), invalid UTF-8, invalid %-escapes and digits ``int()`` does not read
(``²``). Every answer must be below 500, no websocket may close with 1011 or drop
without a close, and the web process must log no unhandled error.

The slots are read from the route table, the OpenAPI document and the registry, so a
new route, parameter or job type is fuzzed without a change here. No worker runs:
submitted jobs stay pending, so no fuzzed URL is ever fetched.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.routing import Route, WebSocketRoute

from jobcast.endpoints import Endpoints
from jobcast.registry import load_registry
from server.app import routes
from server.openapi import build
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.support import Stack, launch

EXAMPLES = int(os.environ.get("JOBCAST_FUZZ_EXAMPLES", "6"))
ADMIN_TOKEN = uuid.uuid4().hex
SPEC = build(routes(), title="jobcast", version="test")
# headers a client sets itself; Host and the framing headers are the server's to parse
HEADERS = ("if-none-match", "authorization", "cookie", "content-type", "origin")
WS_HEADERS = ("authorization", "cookie", "origin", "sec-websocket-protocol")
# the query parameters websockets read (the OpenAPI document does not describe sockets)
WS_QUERY = {
    "/ws/jobs/{job_id}": ("after", "token"),
    "/ws": ("tag",),
    "/ws/admin": ("since",),
    "/ws/batches/{batch_id}": (),
}


@dataclass(frozen=True)
class Slot:
    """One place a hostile value goes: ``where`` is path, query, body, input, upload or header."""

    method: str
    path: str
    where: str
    name: str
    job_type: str = "noop"

    def __str__(self) -> str:
        kind = f"{self.job_type}." if self.where == "input" else ""
        return f"{self.method} {self.path} {self.where}:{kind}{self.name}"


def _slots() -> list[Slot]:
    found: list[Slot] = []
    for route in routes():
        if not isinstance(route, Route) or not route.path.startswith("/api/"):
            continue
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            operation = SPEC["paths"].get(route.path, {}).get(method.lower(), {})
            for param in operation.get("parameters", ()):
                found.append(Slot(method, route.path, param["in"], param["name"]))
            found.append(Slot(method, route.path, "query", "unknown"))
            found += [Slot(method, route.path, "header", name) for name in HEADERS]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                model = SPEC["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]
                found += [Slot(method, route.path, "body", name) for name in model["properties"]]
                found.append(Slot(method, route.path, "body", "unknown"))
            if route.path == "/api/jobs" and method == "POST":
                for job_type in load_registry():
                    fields = job_type.input_model.model_json_schema().get("properties", {})
                    found += [
                        Slot(method, route.path, "input", name, job_type.name) for name in fields
                    ]
            if route.path == "/api/uploads":
                found += [Slot(method, route.path, "upload", n) for n in ("filename", "type")]
    for route in routes():
        if isinstance(route, WebSocketRoute):
            found += [Slot("WS", route.path, "path", name) for name in route.param_convertors]
            found += [Slot("WS", route.path, "query", q) for q in WS_QUERY[route.path]]
            found.append(Slot("WS", route.path, "query", "unknown"))
            found += [Slot("WS", route.path, "header", name) for name in WS_HEADERS]
    return found


SLOTS = _slots()

# ---- the values ------------------------------------------------------------------------------

# named cases, sent to every slot before the generated ones
NUL = b"%00"
OVERLONG_NUL = b"%C0%80"
LONE_SURROGATE = b"%ED%A0%80"
INVALID_ESCAPES = b"%zz%4%"
UNICODE_DIGIT = b"%C2%B2"  # "²": str.isdigit() says yes, int() says no
_LITERAL = st.sampled_from(
    [NUL, OVERLONG_NUL, LONE_SURROGATE, b"%", b"%zz", b"%0", b"%%", b"%FF%FE", b"+", b"%2F", b"%25"]
)
_ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
_NUMBERS = st.sampled_from(
    ["-1", "0", "1e308", "1e999", "NaN", "-0", "99999999999999999999999", "4611686018427387905"]
)


def _url_encoded(raw: bytes) -> bytes:
    return quote(raw, safe="").encode()


# a URL component: any bytes or text, %-encoded, or literal (invalid) escapes, or a mix
URL_VALUES = st.lists(
    st.one_of(
        st.binary(max_size=30).map(_url_encoded),
        _ANY_TEXT.map(lambda t: _url_encoded(t.encode("utf-8", "surrogatepass"))),
        _NUMBERS.map(str.encode),
        _LITERAL,
    ),
    min_size=1,
    max_size=4,
).map(b"".join)


def _json_text(text: str) -> bytes:
    return json.dumps(text).encode()  # \u escapes: NUL and lone surrogates as JSON has them


def _raw_json_string(raw: bytes) -> bytes:
    return b'"' + raw.replace(b"\\", b"").replace(b'"', b"") + b'"'  # bytes as they are


_JSON_LEAVES = st.one_of(
    _ANY_TEXT.map(_json_text),
    st.binary(max_size=30).map(_raw_json_string),
    _NUMBERS.map(str.encode),
    st.sampled_from([b"null", b"true", b"[]", b"{}", b'"\\u0000"', b'"\\ud800"', b'"\xc0\x80"']),
)
# a JSON value: a leaf, or lists and objects of them (keys hostile too)
JSON_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: b"[" + b",".join(items) + b"]"),
        st.lists(st.tuples(_ANY_TEXT.map(_json_text), inner), max_size=3).map(
            lambda pairs: b"{" + b",".join(k + b":" + v for k, v in pairs) + b"}"
        ),
    ),
    max_leaves=6,
)
# a header value: any bytes but the line breaks that would end it
HEADER_VALUES = st.one_of(
    st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    _ANY_TEXT.map(
        lambda t: t.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")
    ),
    st.sampled_from([b"\x00", b"\xc0\x80", b"\xed\xa0\x80", b'W/"\x00"', b"Bearer \x00"]),
)


# ---- the requests ----------------------------------------------------------------------------


@dataclass
class Target:
    port: int
    owner: str
    job_id: str


def raw_request(
    port: int, method: str, target: bytes, headers: dict[bytes, bytes], body: bytes = b""
) -> int:
    """Send one request as these exact bytes; the answer's status (0: closed unanswered)."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"host: 127.0.0.1:%d" % port]
    lines += [b"connection: close", b"content-length: %d" % len(body)]
    lines += [name + b": " + value for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        conn.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        answer = conn.makefile("rb").readline()
    if not answer:
        return 0
    return int(answer.split()[1])


def raw_websocket(port: int, target: bytes, headers: dict[bytes, bytes]) -> tuple[int, int | None]:
    """Open a websocket with these exact bytes: the HTTP status, and once upgraded (101) the
    close code (1000 when it serves: sends its first message, or stays open a moment)."""
    lines = [b"GET " + target + b" HTTP/1.1", b"host: 127.0.0.1:%d" % port]
    lines += [b"upgrade: websocket", b"connection: Upgrade", b"sec-websocket-version: 13"]
    lines += [b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ=="]
    lines += [name + b": " + value for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        conn.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        reader = conn.makefile("rb")
        answer = reader.readline()
        if not answer:
            return 0, None
        status = int(answer.split()[1])
        if status != 101:
            return status, None
        while reader.readline() not in (b"\r\n", b""):
            pass  # the handshake's headers
        conn.settimeout(0.25)
        try:
            while True:
                head = reader.read(2)
                if len(head) < 2:
                    return status, 1006
                length = head[1] & 0x7F
                if length >= 126:
                    length = int.from_bytes(reader.read(2 if length == 126 else 8), "big")
                payload = reader.read(length)
                if head[0] & 0x0F == 8:  # close
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    return status, code
                if b'"snapshot"' in payload:
                    return status, 1000
        except TimeoutError:
            return status, 1000


def send(target: Target, slot: Slot, value: bytes) -> tuple[int, int | None]:
    """The answer's status, and a websocket's close code."""
    token = ADMIN_TOKEN if "/admin" in slot.path else target.owner
    headers = {b"authorization": b"Bearer " + token.encode()}
    path = slot.path.replace("{job_id}", target.job_id).encode()
    if slot.where == "path":
        path = slot.path.replace("{" + slot.name + "}", "\x00").encode().replace(b"\x00", value)
    query = b"?" + slot.name.encode() + b"=" + value if slot.where == "query" else b""
    if slot.where == "header":
        headers[slot.name.encode()] = value
    if slot.method == "WS":
        headers.setdefault(b"origin", b"http://127.0.0.1:%d" % target.port)
        return raw_websocket(target.port, path + query, headers)
    body = b""
    if slot.path == "/api/jobs" and slot.method == "POST":
        headers.setdefault(b"content-type", b"application/json")
        fields = {b'"type"': _json_text(slot.job_type), b'"input"': b"{}"}
        if slot.where == "body":
            fields[_json_text(slot.name)] = value
        if slot.where == "input":
            fields[b'"input"'] = b"{" + _json_text(slot.name) + b":" + value + b"}"
        body = b"{" + b",".join(k + b":" + v for k, v in fields.items()) + b"}"
    if slot.path == "/api/uploads":
        boundary = b"fuzzboundary"
        headers.setdefault(b"content-type", b"multipart/form-data; boundary=" + boundary)
        filename = value if slot.where == "upload" and slot.name == "filename" else b"a.csv"
        part_type = value if slot.where == "upload" and slot.name == "type" else b"text/csv"
        body = b"\r\n".join(
            [
                b"--" + boundary,
                b'content-disposition: form-data; name="file"; filename="' + filename + b'"',
                b"content-type: " + part_type,
                b"",
                b"a,b\n1,2\n",
                b"--" + boundary + b"--",
                b"",
            ]
        )
    return raw_request(target.port, slot.method, path + query, headers, body), None


@pytest.fixture(scope="module")
async def target(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Target]:
    stack: Stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("hostile"),
        workers=0,
        JOBCAST_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    try:
        owner = await stack.owner()
        async with stack.client(owner) as client:
            made = await client.post("/api/jobs", json={"type": "noop", "input": {}})
            assert made.status_code == 202, made.text
            port = int(stack.base_url.rsplit(":", 1)[1])
            yield Target(port=port, owner=owner, job_id=made.json()["id"])
        log = stack.logs("web")  # jobcast's line for a 500, and uvicorn's for an app that raised
        assert "unhandled error" not in log, log[-5000:]
        assert "Exception in ASGI application" not in log, log[-5000:]
    finally:
        stack.close()


def _values_for(slot: Slot) -> st.SearchStrategy[bytes]:
    if slot.where in ("body", "input"):
        return JSON_VALUES
    if slot.where in ("header", "upload"):
        return HEADER_VALUES
    return URL_VALUES


@pytest.mark.parametrize("slot", SLOTS, ids=str)
def test_no_value_in_any_parameter_gets_a_5xx(target: Target, slot: Slot) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @example(value=NUL)
    @example(value=OVERLONG_NUL)
    @example(value=LONE_SURROGATE)
    @example(value=INVALID_ESCAPES)
    @example(value=UNICODE_DIGIT)
    @given(value=_values_for(slot))
    def check(value: bytes) -> None:
        status, close_code = send(target, slot, value)
        assert status < 500, f"{slot} with {value!r} answered {status}"
        # 1011: an error the server caught; 1006: the socket dropped without a close
        assert close_code not in (1006, 1011), f"{slot} with {value!r} closed with {close_code}"

    check()


def test_every_route_is_fuzzed() -> None:
    fuzzed = {(s.method, s.path) for s in SLOTS}
    api = {
        (method, route.path)
        for route in routes()
        if isinstance(route, Route) and route.path.startswith("/api/")
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert fuzzed >= api
    sockets = {route.path for route in routes() if isinstance(route, WebSocketRoute)}
    assert {s.path for s in SLOTS if s.method == "WS"} == sockets
    assert Slot("GET", "/api/jobs", "query", "type") in SLOTS


@pytest.mark.parametrize("path", ["/api/jobs", "/api/admin/jobs"])
def test_a_nul_in_a_list_filter_is_a_422_naming_it(target: Target, path: str) -> None:
    token = ADMIN_TOKEN if "/admin" in path else target.owner
    response = httpx.get(
        f"http://127.0.0.1:{target.port}{path}?type=%00",
        headers={"Authorization": f"Bearer {token}"},
    )
    error = assert_error(response, 422, "invalid_input")
    assert error["message"].startswith("query parameter type")
    assert error["details"] == [
        {"field": "type", "message": "contains U+0000, which cannot be stored"}
    ]
