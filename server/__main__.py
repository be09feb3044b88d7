"""``python -m server``: the web process, uvicorn serving jobcast with its settings.

The limits are deliberate (docs/security.md): incoming websocket messages of at
most 16 KiB with a queue of 4 (uvicorn's defaults are 16 MiB and 32), no
per-message compression, bounded request heads, read timeouts and unread
websocket output (server/protocols.py); forwarded headers are believed from
JOBCAST_TRUSTED_PROXIES only. Logging is jobcast's, so ``JOBCAST_LOG_FORMAT=json``
covers uvicorn's own lines too; each request is logged once by jobcast.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from jobcast.logs import setup_logging
from jobcast.settings import settings_or_exit
from server.protocols import BoundedWebSocketProtocol, http_protocol

APP = "server.app:create_app"
WS_MAX_SIZE = 16 * 1024
WS_MAX_QUEUE = 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    parser.add_argument(
        "--app", default=APP, help="the ASGI app factory to serve (module:function)"
    )
    args = parser.parse_args(argv)
    settings = settings_or_exit("web")
    setup_logging(settings, "web")
    uvicorn.run(
        args.app,
        factory=True,
        host=settings.host,
        port=settings.port,
        ws_max_size=WS_MAX_SIZE,
        ws_max_queue=WS_MAX_QUEUE,
        ws_per_message_deflate=False,
        http=http_protocol(settings),
        ws=BoundedWebSocketProtocol,
        proxy_headers=bool(settings.trusted_proxies.strip()),
        forwarded_allow_ips=settings.trusted_proxies or "127.0.0.1",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
