"""The web process's resources, opened once in the lifespan and read from ``request.state``."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from starlette.websockets import WebSocket

from jobcast.bus import Hub
from jobcast.eta import Estimator
from jobcast.listener import Listener
from jobcast.queue import Queue
from jobcast.registry import Registry
from jobcast.settings import Settings
from jobcast.store import Store
from server.limits import RateLimiter


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    redis: aioredis.Redis
    queue: Queue
    hub: Hub
    listener: Listener
    registry: Registry
    limiter: RateLimiter
    estimator: Estimator
    # open websockets per owner in this process
    sockets: dict[object, int]
    # every accepted websocket of this process, closed with 1001 when it is told to stop
    open_sockets: set[WebSocket]
