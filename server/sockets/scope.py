"""Which jobs' events a feed socket sends: all its owner's, or a browser token's scope.

An owner's channel carries every job of the owner; an app's browsers share its key's
owner, so a socket opened with a browser token sends only the events of jobs in the
token's scope. A job's subject, tenant and tags never change, so each job is looked up
once per socket (the last thousand answers are kept).
"""

from __future__ import annotations

from starlette.websockets import WebSocket

from server.auth import Caller, in_scope

_REMEMBER = 1000


class ScopeFilter:
    """Awaitable test of a job id: whether its events are this socket's to send."""

    def __init__(self, ws: WebSocket, caller: Caller) -> None:
        self.ws = ws
        self.caller = caller
        self._known: dict[str, bool] = {}

    async def __call__(self, job_id: str) -> bool:
        if self.caller.scope is None:
            return True
        known = self._known.get(job_id)
        if known is None:
            known = await in_scope(self.ws, self.caller, job_id)
            self._known[job_id] = known
            if len(self._known) > _REMEMBER:
                del self._known[next(iter(self._known))]
        return known
