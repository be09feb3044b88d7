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
import asyncio
import sys

import uvicorn

from jobcast.collector import pace_collector
from jobcast.errors import ConfigError
from jobcast.install import check_install
from jobcast.links import PgLink
from jobcast.logs import setup_logging
from jobcast.settings import Settings, settings_or_exit
from jobcast.store import Store
from server.protocols import http_protocol, ws_protocol

APP = "server.app:create_app"
WS_MAX_SIZE = 16 * 1024
WS_MAX_QUEUE = 4


async def refuse_other_install(settings: Settings) -> None:
    """Before uvicorn starts: a database of another install is one line, not a traceback
    (the lifespan checks again, for an app served some other way)."""
    async with Store.open(settings.database_dsn, max_size=1, link=PgLink.of(settings)) as store:
        await check_install(store, settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    parser.add_argument(
        "--app", default=APP, help="the ASGI app factory to serve (module:function)"
    )
    args = parser.parse_args(argv)
    settings = settings_or_exit("web")
    setup_logging(settings, "web")
    pace_collector()
    try:
        asyncio.run(refuse_other_install(settings))
    except ConfigError as exc:
        print(f"jobcast web: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        args.app,
        factory=True,
        host=settings.host,
        port=settings.port,
        ws_max_size=WS_MAX_SIZE,
        ws_max_queue=WS_MAX_QUEUE,
        ws_per_message_deflate=False,
        http=http_protocol(settings),
        ws=ws_protocol(settings),
        proxy_headers=bool(settings.trusted_proxies.strip()),
        forwarded_allow_ips=settings.trusted_proxies or "127.0.0.1",
        access_log=False,
        log_config=None,
        timeout_keep_alive=settings.keep_alive_s,
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
