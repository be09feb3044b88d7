"""A TCP proxy in front of a real Redis that can make it answer garbage to subscribers.

Everything passes through unchanged until ``garbage`` is set: from then on, every
reply Redis sends on a connection that subscribed (a pub/sub connection) is followed
by a reply no command has, an array holding one integer. redis-py parses it fine and
then fails on it with an ``IndexError`` in its pub/sub message handling: an error no
lost connection explains, the kind a background task must survive. Other connections
(commands, PING, the queue) are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib

GARBAGE = b"*1\r\n:1\r\n"


class RedisProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self.garbage = False
        self.garbage_sent = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        subscribed = asyncio.Event()

        async def to_redis() -> None:
            while data := await reader.read(65536):
                if b"SUBSCRIBE" in data.upper():
                    subscribed.set()
                up_writer.write(data)
                await up_writer.drain()

        async def to_client() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                if self.garbage and subscribed.is_set():
                    writer.write(GARBAGE)
                    self.garbage_sent += 1
                await writer.drain()

        pumps = [asyncio.create_task(to_redis()), asyncio.create_task(to_client())]
        self._pumps.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._pumps.difference_update(pumps)
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await w.wait_closed()
