"""Live events between processes: workers publish on Redis, each server process fans out.

``publisher`` is the worker's side, ``hub`` the server's, ``message`` what travels
between them. The Postgres NOTIFY listener (``jobcast.listener``) feeds the hub too.
"""

from jobcast.bus.hub import Hub, SlowConsumer, Subscription
from jobcast.bus.message import Hint, Item, Live, Resync
from jobcast.bus.publisher import Publisher, publish_quietly

__all__ = [
    "Hint",
    "Hub",
    "Item",
    "Live",
    "Publisher",
    "Resync",
    "SlowConsumer",
    "Subscription",
    "publish_quietly",
]
