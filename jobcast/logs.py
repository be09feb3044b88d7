"""Logging set up once per process, the same way in the web process and the worker."""

from __future__ import annotations

import logging

from jobcast.settings import Settings

_FORMAT = "%(asctime)s %(levelname)-7s {role} %(name)s: %(message)s"


def setup_logging(settings: Settings, role: str) -> None:
    """Log to stderr, each line tagged with the process's role (web, worker, dev)."""
    root = logging.getLogger()
    if not any(getattr(h, "_jobcast", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT.format(role=role)))
        handler._jobcast = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    # uvicorn prints its own lines; do not print them a second time
    logging.getLogger("uvicorn").propagate = False
    # arq's line per job start and end would drown ours, which carry the same ids
    logging.getLogger("arq").setLevel(logging.WARNING)
