"""The web process's resources, opened once in the lifespan and read from ``request.state``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
from server.recent import Recent
from server.submits import Submits


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
    # new jobs, many to a statement when they come together
    submits: Submits
    # open websockets per owner in this process
    sockets: dict[object, int]
    # every accepted websocket of this process, closed with 1001 when it is told to stop
    open_sockets: set[WebSocket]
    # the admin stats the admin feeds of this process push, read once for all of them
    admin_stats: Recent[Any] = field(default_factory=Recent)
