"""The admin feed (``/ws/admin``): what the console shows, pushed as it changes.

It opens with a snapshot (the admin stats as the console asks for them, the jobs not
finished counted; the latest bulk actions; and a cursor), then sends every job's status
changes (``jobs``), bulk-action progress (``action``) and fresh stats (``stats``, one read
a push period for every feed of the process) as they come. A console that lost its socket
reconnects with ``?since=<cursor>`` and gets the status changes it missed, from
``job_events``.

The feed reads Postgres once a second for all of it: admin sockets are few, and
Postgres holds every change, whichever process made it. The admin or the operator
token opens it (``Authorization: Bearer`` or ``?token=``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette import status
from starlette.websockets import WebSocket

from jobcast import metrics
from jobcast.errors import Refused, StorageUnavailable
from jobcast.model import dumps
from server.admin import AdminStats, current_stats
from server.admin_access import role_of
from server.errors import response_of
from server.sockets.stream import CLIENT_GONE, close, run_pair
from server.state import Services

log = logging.getLogger(__name__)

TICK_S = 1.0
STATS_EVERY = 5  # ticks
CHANGES_MAX = 500


def _action(row: Any) -> dict[str, Any]:
    return {
        "type": "action",
        "id": str(row["id"]),
        "action": row["action"],
        "actor": row["actor"],
        "matched": row["matched"],
        "done": row["done"],
        "finished": row["finished_at"] is not None,
        "started_at": row["started_at"].isoformat(),
    }


def _since(ws: WebSocket) -> datetime | None:
    raw = ws.query_params.get("since")
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw.replace(" ", "+"))  # a "+" sent unquoted
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def admin_socket(ws: WebSocket) -> None:
    services: Services = ws.state.services
    try:
        role = await role_of(ws)
    except Refused as exc:
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            await ws.send_denial_response(response_of(exc))
        else:
            await ws.close(status.WS_1008_POLICY_VIOLATION)
        return
    await ws.accept()
    services.open_sockets.add(ws)
    metrics.OPEN_WEBSOCKETS.labels("admin").inc()
    try:
        await run_pair(ws, lambda: _send_forever(ws, services, role.value, _since(ws)))
    except CLIENT_GONE:
        pass
    except StorageUnavailable:
        await close(ws, status.WS_1011_INTERNAL_ERROR, "the job store is unavailable: reconnect")
    finally:
        metrics.OPEN_WEBSOCKETS.labels("admin").dec()
        services.open_sockets.discard(ws)


async def _shared_stats(services: Services, role: str) -> AdminStats:
    """The stats every feed of this process pushes (the console's: the jobs not finished
    counted), read at most once a push period for all of them, whatever their number."""
    shown: AdminStats = await services.admin_stats.get(
        lambda: current_stats(services, role, live=True), max_age_s=STATS_EVERY * TICK_S
    )
    return shown.model_copy(update={"role": role})


async def _send_forever(
    ws: WebSocket, services: Services, role: str, since: datetime | None
) -> None:
    store = services.store
    cursor = since or datetime.now(UTC) - timedelta(seconds=1)
    actions = await store.recent_actions(10)
    snapshot = {
        "type": "snapshot",
        "stats": (await current_stats(services, role, live=True)).model_dump(mode="json"),
        "actions": [_action(r) for r in actions],
        "cursor": cursor.isoformat(),
    }
    await ws.send_text(dumps(snapshot).decode())
    seen = {str(r["id"]): (r["done"], r["finished_at"] is not None) for r in actions}
    tick = 0
    while True:
        changes = await store.status_changes(cursor, CHANGES_MAX)
        if changes:
            cursor = changes[-1]["at"]
            body = {
                "type": "jobs",
                "changes": [
                    {
                        "job_id": str(c["job_id"]),
                        "seq": c["seq"],
                        "status": c["status"],
                        "job_type": c["type"],
                        "at": c["at"].isoformat(),
                    }
                    for c in changes
                ],
                "cursor": cursor.isoformat(),
            }
            await ws.send_text(dumps(body).decode())
            if len(changes) == CHANGES_MAX:
                continue  # more to send at once
        for row in await store.recent_actions(10):
            now = (row["done"], row["finished_at"] is not None)
            if seen.get(str(row["id"])) != now:
                seen[str(row["id"])] = now
                await ws.send_text(dumps(_action(row)).decode())
        tick += 1
        if tick % STATS_EVERY == 0:
            stats = (await _shared_stats(services, role)).model_dump(mode="json")
            await ws.send_text(dumps({"type": "stats", "stats": stats}).decode())
        await asyncio.sleep(TICK_S)
