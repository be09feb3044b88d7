"""uvicorn's HTTP and websocket protocols with the bounds jobcast needs on the internet.

uvicorn's httptools protocol reads a request's head whole, however large (one
64 MiB header grew the process by 60 MiB), and waits for it, or for a body, as
long as the client likes. Its websocket protocol answers every ping at once,
whether or not the client reads the answers. The subclasses here bound each:

- a request's line and headers together: ``JOBCAST_MAX_HEADER_BYTES`` and
  ``JOBCAST_MAX_HEADERS``; beyond either, 431 and the connection is closed;
- time: a head must arrive whole within ``JOBCAST_HEADER_TIMEOUT_S`` of its first
  byte (or of the connection), and a body must not stall for
  ``JOBCAST_BODY_TIMEOUT_S``; else 408 (when nothing was answered yet) and closed.
  A refused request's connection is half-closed after its answer and read for
  ``LINGER_S`` more, so bytes the client still sends cannot reset it before the client
  has read the answer;
- a websocket's pings: each costs a pong the client may never read, and CPU; a
  socket may send ``WS_PING_BURST`` at once and ``WS_PINGS_PER_S`` after that
  (a browser sends none, a library one every 20 s or so), and pongs and data
  together may hold at most ``WS_MAX_UNSENT_BYTES`` unsent; a socket over either
  is dropped;
- a websocket's reader: a client that reads nothing of what waits for it (the
  transport's buffer past its high-water mark) for ``JOBCAST_WS_SEND_TIMEOUT_S`` is
  dropped. One timer while the buffer is full, rather than a deadline on every send:
  an event sent to ten thousand sockets costs ten thousand writes, not as many timers.

A websocket handshake refused with an HTTP answer (401, 403, 429) is logged as the
refusal it is, not as uvicorn's "returned without completing handshake" error.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import TimerHandle
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from jobcast.inbox import Inbox
from jobcast.settings import Settings

log = logging.getLogger(__name__)

# What one websocket may hold in its transport's buffer: the app's own sends wait at
# 64 KiB (the transport's high-water mark), so only answers to a client that does not
# read (pongs) can pass this.
WS_MAX_UNSENT_BYTES = 256 * 1024
WS_PING_BURST = 50
WS_PINGS_PER_S = 2.0
# how long a refused request's connection is still read (and what comes discarded) after its
# answer, before it is closed: closed with the client's bytes unread, it would be reset, and a
# reset can reach the client before it has read the answer
LINGER_S = 2.0


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a request already answered."""


class _OneTimer:
    """A protocol's one deadline at a time: armed anew, or disarmed, as its state changes."""

    _timer: TimerHandle | None = None
    loop: asyncio.AbstractEventLoop

    def _arm(self, delay_s: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay_s, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class BoundedHttpProtocol(_OneTimer, HttpToolsProtocol):
    """httptools with a bounded request head and read timeouts."""

    max_header_bytes = 32 * 1024
    max_headers = 100
    header_timeout_s = 10.0
    body_timeout_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False  # between a request's first byte and its last header
        self._in_body = False  # between its last header and the end of its body
        self._head_bytes = 0  # bytes of the head read after the chunk it began in
        self._head_count = 0
        self._refused = False
        self._last_read = 0.0

    # the connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm(self.header_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, but a request refused in a callback stays answered (431, not 400)
        if self._refused:
            return
        head_under_way = self._in_head
        self._unset_keepalive_if_required()
        self._last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._disarm()
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self._refused:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_head and head_under_way:
            # counted from the chunk after the one the head began in (which may hold the
            # end of an earlier request): over by at most one read, never a false 431
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(431, f"the request head is over {self.max_header_bytes} bytes")
                return
        # timers only for what this read left unfinished: a request that came whole in
        # one read (most do) costs none
        if self._timer is None:
            if self._in_head:
                self._arm(self.header_timeout_s, self._head_timed_out)
            elif self._in_body:
                self._arm(self.body_timeout_s, self._body_timed_out)

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._head_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_count += 1
        if self._head_count > self.max_headers:
            self._refuse(431, f"more than {self.max_headers} request headers")
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        super().on_message_complete()

    # refusals and timers

    def _refuse(self, status: int, message: str) -> None:
        self._refused = True
        self._disarm()
        log.info("refused a request from %s: %s", _address(self.client), message)
        if not self.transport.is_closing():
            body = message.encode()
            self.transport.write(
                b"".join(
                    [
                        STATUS_LINE[status],
                        b"content-type: text/plain; charset=utf-8\r\n",
                        b"content-length: %d\r\n" % len(body),
                        b"connection: close\r\n\r\n",
                        body,
                    ]
                )
            )
            if self.transport.can_write_eof():
                # the answer, then the end of what this side sends: the client reads it
                # whole and closes; what it sends meanwhile is read and dropped
                self.transport.write_eof()
                self._arm(LINGER_S, self._linger_over)
            else:
                self.transport.close()

    def _linger_over(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _head_timed_out(self) -> None:
        self._timer = None
        if self._in_head:
            self._refuse(408, f"the request head did not arrive within {self.header_timeout_s:g} s")
        elif not self.transport.is_closing():
            self.transport.close()  # connected, sent nothing

    def _body_timed_out(self) -> None:
        self._timer = None
        idle_s = self.loop.time() - self._last_read
        if self.flow.read_paused or idle_s < self.body_timeout_s:
            # the app has not read what came (that is not the client stalling), or it came lately
            self._arm(max(0.1, self.body_timeout_s - idle_s), self._body_timed_out)
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
        else:
            self._refuse(408, f"the request body stalled for {self.body_timeout_s:g} s")


class BoundedWebSocketProtocol(_OneTimer, WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, dropping a client whose pings cost too much, and
    lighter to hold open: an idle socket's inbox is empty, and once the handshake is
    answered its request and response are let go (uvicorn reads them no more)."""

    send_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn asks of its queue put_nowait, get and empty; an asyncio.Queue costs
        # about 3 KiB a socket before anything is in it, an Inbox nothing
        self.queue = Inbox()  # type: ignore[assignment]
        self._pings_left = float(WS_PING_BURST)
        self._pinged_at = self.loop.time()
        self._dropped = False

    def data_received(self, data: bytes) -> None:
        if not self._dropped:
            super().data_received(data)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # the handshake's request and 101 answer, headers and all (about 4 KiB),
            # would otherwise stay as long as the socket does
            vars(self).pop("request", None)
            vars(self).pop("response", None)
        elif message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            # uvicorn's sans-io protocol leaves the handshake "incomplete" after an HTTP
            # answer to it (a refusal: 401, 403, 429), and logs every refusal as an error
            self.handshake_complete = True

    def handle_ping(self) -> None:
        # uvicorn writes each pong at once, without flow control: a client that sends
        # pings and reads nothing would grow this buffer without end
        if self._dropped:
            return
        now = self.loop.time()
        self._pings_left = min(
            float(WS_PING_BURST), self._pings_left + (now - self._pinged_at) * WS_PINGS_PER_S
        )
        self._pinged_at = now
        self._pings_left -= 1
        if self._pings_left < 0:
            self._drop(f"over {WS_PINGS_PER_S:g} pings a second")
        elif self.transport.get_write_buffer_size() > WS_MAX_UNSENT_BYTES:
            self._drop(f"over {WS_MAX_UNSENT_BYTES} bytes of answers it does not read")
        else:
            super().handle_ping()

    def pause_writing(self) -> None:  # the timer runs while the client reads nothing
        super().pause_writing()
        self._arm(self.send_timeout_s, self._read_nothing)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _read_nothing(self) -> None:
        self._timer = None
        self._drop(f"read nothing of what waited for it for {self.send_timeout_s:g} s")

    def _drop(self, why: str) -> None:
        self._dropped = True
        log.info("websocket from %s dropped: %s", _address(self.client), why)
        self.conn.data_to_send()  # the pong, discarded
        self.transport.abort()


def http_protocol(settings: Settings) -> type[BoundedHttpProtocol]:
    """The HTTP protocol class with this install's limits."""
    return type(
        "HttpProtocol",
        (BoundedHttpProtocol,),
        {
            "max_header_bytes": settings.max_header_bytes,
            "max_headers": settings.max_headers,
            "header_timeout_s": settings.header_timeout_s,
            "body_timeout_s": settings.body_timeout_s,
        },
    )


def ws_protocol(settings: Settings) -> type[BoundedWebSocketProtocol]:
    """The websocket protocol class with this install's limits."""
    return type(
        "WebSocketProtocol",
        (BoundedWebSocketProtocol,),
        {"send_timeout_s": settings.ws_send_timeout_s},
    )


def _address(client: tuple[str, int] | None) -> str:
    return client[0] if client else "unknown"
