"""Durable jobs: checkpoints, a person in the loop, pause and drafts.

The worker's side (where an attempt resumes, a step asking, a pause taking effect at a
step boundary) is fenced by the attempt like every other state change of an attempt;
the owner's side (an answer, a pause, a resume, a draft's edit and start) by the owner
and the status the job must be in. Each is one statement, its event included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from jobcast.model import Event
from jobcast.sql import QUERIES
from jobcast.store.attempts import Attempts


@dataclass(frozen=True, slots=True)
class ExpiredInput:
    """A waiting job's question whose time limit passed."""

    job_id: UUID
    step: str
    on_timeout: str
    default_answer: Any
    owner_id: UUID
    priority: int


class Interaction(Attempts):
    async def record_resumed(
        self, job_id: UUID, attempt: int, *, step: str | None, skipped: list[str], progress: float
    ) -> Event | None:
        payload = {"step": step, "skipped": skipped, "attempt": attempt, "progress": progress}
        return await self._change("resumed", job_id, attempt, progress, step, payload)

    async def wait_for_input(
        self,
        job_id: UUID,
        attempt: int,
        *,
        step: str,
        prompt: str,
        schema: dict[str, Any],
        timeout_s: float | None,
        on_timeout: str,
        default: Any,
    ) -> Event | None:
        """The job waits for a person's answer to ``step``'s question; its attempt ends."""
        payload = {
            "status": "waiting",
            "step": step,
            "prompt": prompt,
            "schema": schema,
            "on_timeout": on_timeout,
            "message": prompt,
        }
        return await self._change(
            "wait_for_input",
            job_id,
            attempt,
            step,
            prompt,
            schema,
            timeout_s,
            on_timeout,
            default,
            payload,
        )

    async def answer_input(
        self, job_id: UUID, owner_id: UUID | None, *, step: str, answer: Any
    ) -> Event | None:
        """Store the answer and make the job pending; None if it is not (or no longer)
        waiting on that step's question. ``owner_id`` None: the time limit gave the default."""
        payload = {
            "status": "pending",
            "step": step,
            "answer": answer,
            "answered_by": str(owner_id) if owner_id else None,
            "expired": owner_id is None,
            "message": f"Answered; going on at {step}",
        }
        return await self._change("answer_input", job_id, owner_id, step, answer, payload)

    async def expired_inputs(self, limit: int = 100) -> list[ExpiredInput]:
        found = await self._run(lambda: self.pool.fetch(QUERIES["expired_inputs"], limit))
        return [
            ExpiredInput(
                job_id=r["job_id"],
                step=r["step"],
                on_timeout=r["on_timeout"],
                default_answer=r["default_answer"],
                owner_id=r["owner_id"],
                priority=r["priority"],
            )
            for r in found
        ]

    async def fail_waiting(self, job_id: UUID, *, error: dict[str, Any]) -> Event | None:
        payload = {"status": "failed", "error": error, "message": error["message"]}
        return await self._change("fail_waiting", job_id, error, error["message"], payload)

    async def pause(self, job_id: UUID, owner_id: UUID) -> Event | bool:
        """Pause a pending job at once (its event), or ask a running one to pause at its next
        step boundary (True); False when the job is neither."""
        payload = {"status": "paused", "message": "Paused"}
        event = await self._change("pause_pending", job_id, owner_id, payload)
        if event is not None:
            return event
        asked = await self._run(
            lambda: self.pool.fetchval(QUERIES["request_pause"], job_id, owner_id)
        )
        return asked is not None

    async def pause_at_boundary(self, job_id: UUID, attempt: int) -> Event | None:
        """The paused job's event if a pause was asked for; None otherwise (go on)."""
        payload = {"status": "paused", "message": "Paused"}
        return await self._change("pause_at_boundary", job_id, attempt, payload)

    async def resume(self, job_id: UUID, owner_id: UUID) -> Event | bool:
        """Queue a paused job again (its event), or withdraw a running job's pause request
        (True); False when the job is neither."""
        payload = {"status": "pending", "message": "Resumed"}
        event = await self._change("resume", job_id, owner_id, payload)
        if event is not None:
            return event
        withdrawn = await self._run(
            lambda: self.pool.fetchval(QUERIES["withdraw_pause"], job_id, owner_id)
        )
        return withdrawn is not None

    async def edit_draft(
        self, job_id: UUID, owner_id: UUID, *, params: dict[str, Any], estimated_s: float | None
    ) -> Event | None:
        payload = {"status": "draft", "message": "Input changed"}
        return await self._change("edit_draft", job_id, owner_id, params, estimated_s, payload)

    async def start_draft(self, job_id: UUID, owner_id: UUID, *, cap: int | None) -> Event | None:
        payload = {"status": "pending", "message": None}
        return await self._change("start_draft", job_id, owner_id, cap, payload)


__all__ = ["ExpiredInput", "Interaction"]
