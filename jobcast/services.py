"""The old name of ``jobcast.endpoints`` (finding or starting Postgres and Redis)."""

from jobcast.endpoints import Endpoints, free_port, provide

__all__ = ["Endpoints", "free_port", "provide"]
