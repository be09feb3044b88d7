"""Websockets: one job's events (``jobs``) and an owner's feed (``feed``).

Both are admitted in one place (``admission``) and follow their hub subscription
the same way (``stream``).
"""

from server.sockets.batch import batch_socket
from server.sockets.feed import owner_socket
from server.sockets.jobs import job_socket
from server.sockets.stream import close_all

__all__ = ["batch_socket", "close_all", "job_socket", "owner_socket"]
