"""What travels on the bus: the channels an event goes to, and what a subscriber receives.

A worker publishes every event as its wire JSON on its job's channel and on its
owner's channel. A subscriber receives
``Live`` events parsed from that JSON, or carried by a Postgres NOTIFY (``heard``);
``Hint``s, NOTIFYs of events too large to carry (an event exists; read it
from ``job_events``); and ``Resync`` when the live channel was interrupted and it must
catch up from Postgres.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from jobcast.model import Event, EventKind, dumps
from jobcast.settings import Settings
from jobcast.store import rows

log = logging.getLogger(__name__)

_FINAL = ("completed", "failed", "cancelled")


def channels(settings: Settings, event: Event) -> list[str]:
    """The job's channel; and the owner's (toasts, live job lists), progress included: a
    server process hears an owner's channel only while one of its feeds is open, and a
    feed passes progress on only to a socket that asks (``/ws?progress=1``). A job's
    cancel also goes to the workers' channel: the one running it stops it at once
    (``workers/cancels.py``)."""
    names = [settings.job_channel(event.job_id)]
    if event.owner_id is not None:
        names.append(settings.owner_channel(event.owner_id))
    if event.kind is EventKind.STATUS and event.data.get("status") == "cancelled":
        names.append(settings.cancels_channel)
    return names


def encode(event: Event) -> bytes:
    """An event as it is published: its wire JSON."""
    return dumps(event.wire())


@dataclass(frozen=True, slots=True)
class Live:
    """An event as it came over Redis: its seq, whether it ends the job or only reports
    progress, and its JSON text."""

    job_id: str
    seq: int
    final: bool
    text: str
    at: str = ""
    progress: bool = False


@dataclass(frozen=True, slots=True)
class Hint:
    """Postgres says this job has an event with this seq: read it from job_events if missing."""

    job_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Resync:
    """The live channel was down for a while: catch up from Postgres."""


Item = Live | Hint | Resync


def live_of(event: Event) -> Live:
    """An event as a subscriber receives it, as if it had come over Redis."""
    return Live(
        job_id=str(event.job_id),
        seq=event.seq,
        final=event.final,
        text=encode(event).decode(),
        at=event.at.isoformat(),
        progress=event.kind is EventKind.PROGRESS,
    )


def heard(payload: str) -> Live | Hint | None:
    """A NOTIFY's event (a ``Hint`` when it carries ids alone); None (logged) when the
    payload is not one."""
    try:
        got = rows.of_notice(payload)
        if got.event is None:
            return Hint(job_id=got.job_id, seq=got.seq)
        return live_of(got.event)
    except (ValueError, TypeError, KeyError):
        log.warning("dropped a malformed NOTIFY payload")
        return None


def parse(data: bytes | str) -> Live | None:
    """A published event, or None (logged) when the message is not one."""
    try:
        body: dict[str, Any] = orjson.loads(data)
        final = body["kind"] == "status" and body["status"] in _FINAL
        text = data.decode() if isinstance(data, bytes) else data
        return Live(
            job_id=body["job_id"],
            seq=int(body["seq"]),
            final=final,
            text=text,
            at=body.get("at", ""),
            progress=body["kind"] == "progress",
        )
    except (ValueError, KeyError, TypeError):
        log.warning("dropped a malformed pub/sub message")
        return None
