"""A forwarding TCP proxy that can go silent: the link that stops answering without closing.

A NAT, a firewall or a load balancer that drops a flow's state does not close the
connection: bytes just stop arriving, in both directions, and nobody is told. This
proxy stands on a loopback port in front of one server (Redis or Postgres) and
forwards both ways until ``silence()``: from then on it forwards nothing, keeps every
socket open, and accepts new connections only to hold them silently as well. The
bytes it holds are delivered after ``resume()``, as TCP's retransmissions would
deliver them once a partitioned network heals.

Silence is bounded: it ends by itself after ``max_silence_s``, and ``close()`` drops
every connection, so a failing test cannot leave a process waiting forever.

One limit of a loopback stand-in: the proxy's own kernel acknowledges what it does
not forward, so TCP keepalive (which a real silent link defeats) cannot notice this
silence; only the application's own timeouts and pings can.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from urllib.parse import urlsplit, urlunsplit

_CHUNK = 65_536


class SilentProxy:
    """Forwards 127.0.0.1:<port> to a server, until told to go silent."""

    def __init__(self, target_url: str, *, max_silence_s: float = 60.0) -> None:
        parts = urlsplit(target_url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the proxy forwards to loopback only, not {parts.hostname!r}")
        self._target_url = target_url
        self._target = (parts.hostname, parts.port)
        self._max_silence_s = max_silence_s
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._auto_resume: asyncio.TimerHandle | None = None
        self.port = 0
        self.accepted = 0  # connections accepted so far
        self.silent_since: float | None = None  # monotonic time the silence began

    async def start(self) -> SilentProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        """The target's URL with the proxy's address in place of the server's."""
        parts = urlsplit(self._target_url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def silent(self) -> bool:
        return not self._flowing.is_set()

    def silence(self) -> None:
        """Stop forwarding, both ways, on every connection, old and new; close nothing."""
        if self.silent:
            return
        self._flowing.clear()
        self.silent_since = time.monotonic()
        loop = asyncio.get_running_loop()
        self._auto_resume = loop.call_later(self._max_silence_s, self.resume)

    def resume(self) -> None:
        """Forward again, the held bytes first."""
        if self._auto_resume is not None:
            self._auto_resume.cancel()
            self._auto_resume = None
        self.silent_since = None
        self._flowing.set()

    async def close(self) -> None:
        if self._auto_resume is not None:
            self._auto_resume.cancel()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> SilentProxy:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(client_w)
        accepting = asyncio.current_task()
        if accepting is not None:
            self._tasks.add(accepting)  # so close() ends a connection still held
        try:
            await self._flowing.wait()  # a connection made during a silence is held, unanswered
            server_r, server_w = await asyncio.open_connection(*self._target)
        except (OSError, asyncio.CancelledError):
            client_w.close()
            self._writers.discard(client_w)
            return
        finally:
            if accepting is not None:
                self._tasks.discard(accepting)
        self._writers.add(server_w)
        self._spawn(self._pump(client_r, server_w))
        self._spawn(self._pump(server_r, client_w))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await self._flowing.wait()  # went silent while these bytes came: hold them
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
