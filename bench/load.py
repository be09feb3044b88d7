"""The load generator's HTTP client: aiohttp, which costs the benchmark process a fraction
of the CPU httpx does per request. On a small machine the load generator shares its
cores with the server, Postgres and Redis, so the cheaper it is, the more of the machine
the measured service gets (httpx stays the client of the product itself).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import aiohttp
import orjson


class Answer:
    """What a benchmark reads of a response, read whole."""

    __slots__ = ("body", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], body: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.body)


class LoadClient:
    """Keep-alive HTTP/1.1 to one base URL, at most ``connections`` connections at once."""

    def __init__(self, base_url: str, token: str | None, connections: int) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = aiohttp.ClientSession(
            base_url=base_url.rstrip("/"),
            headers=headers,
            connector=aiohttp.TCPConnector(limit=connections, force_close=False),
            timeout=aiohttp.ClientTimeout(total=30.0),
            json_serialize=lambda value: orjson.dumps(value).decode(),
            skip_auto_headers=("User-Agent",),
        )

    async def request(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        async with self._session.request(method, path, json=json, headers=headers) as response:
            body = await response.read()
            lowered = {k.lower(): v for k, v in response.headers.items()}
            return Answer(response.status, lowered, body)

    async def get(self, path: str, *, headers: dict[str, str] | None = None) -> Answer:
        return await self.request("GET", path, headers=headers)

    async def post(self, path: str, *, json: Any = None) -> Answer:
        return await self.request("POST", path, json=json)

    async def aclose(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> LoadClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
