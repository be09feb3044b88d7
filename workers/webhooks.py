"""Sending completion webhooks: each due try, signed, recorded on the job."""

from __future__ import annotations

import logging

import httpx

from jobcast.model import dumps
from jobcast.schemas import JobOut
from jobcast.settings import Settings
from jobcast.store import Store
from jobcast.webhooks import (
    MAX_DELIVERY_ATTEMPTS,
    SIGNATURE_HEADER,
    next_delay_s,
    resolves_public,
    sign,
)

log = logging.getLogger(__name__)

_TIMEOUT_S = 5.0


async def deliver_due(store: Store, settings: Settings) -> None:
    due = await store.due_deliveries()
    if not due:
        return
    async with httpx.AsyncClient(timeout=_TIMEOUT_S, follow_redirects=False) as client:
        for row in due:
            await _deliver(client, store, settings, row)


async def _deliver(
    client: httpx.AsyncClient, store: Store, settings: Settings, row: object
) -> None:
    job_id, attempt, url = row["job_id"], row["attempt"], row["url"]  # type: ignore[index]
    job = await store.get_job(job_id)
    if job is None:
        return
    body = dumps({"type": "job.finished", "job": JobOut.of(job).model_dump(mode="json")})
    status_code: int | None = None
    error: str | None = None
    if not await resolves_public(url, settings.webhook_host_set):
        error = "the target is not an allowed host"
    else:
        try:
            response = await client.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(row["webhook_secret"], body),  # type: ignore[index]
                    "User-Agent": "jobcast-webhook",
                },
            )
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"answered {status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
    delivered = error is None
    retry_in_s = (
        None
        if delivered or attempt >= MAX_DELIVERY_ATTEMPTS
        else next_delay_s(attempt, settings.webhook_retry_base_s)
    )
    await store.record_delivery(
        job_id,
        attempt,
        delivered=delivered,
        status_code=status_code,
        error=error,
        retry_in_s=retry_in_s,
    )
    if delivered:
        log.info("job %s: webhook delivered (try %d)", job_id, attempt)
    else:
        log.warning("job %s: webhook try %d failed: %s", job_id, attempt, error)
