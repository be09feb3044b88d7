"""Completion webhooks: every worker sends the due ones, several at once, each claimed once.

Deliveries are rows in ``webhook_deliveries`` (one per try). A worker claims the
due ones in one statement (``FOR UPDATE SKIP LOCKED``): each row it gets is its own
until the claim runs out, so two workers never send the same try, and a worker
that died holding a claim leaves it to another after ``CLAIM_S``. The sends run
beside the jobs and the sweep, at most ``CONCURRENCY`` at once per worker, so a
slow receiver holds back only its own delivery. Each try is signed and recorded on
the job; a failed one is retried with backoff (``jobcast.webhooks``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from jobcast.errors import StorageUnavailable
from jobcast.model import dumps
from jobcast.schemas import JobOut
from jobcast.settings import Settings
from jobcast.store import Store
from jobcast.tasks import raise_swallowed_cancel
from jobcast.webhooks import (
    MAX_DELIVERY_ATTEMPTS,
    TRY_TIMEOUT_S,
    call,
    next_delay_s,
    open_client,
)

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

CONCURRENCY = 8  # sends in flight per worker
# A claim outlives any try (lookup, connect and read, all within TRY_TIMEOUT_S, then the
# record): only a worker that died or froze mid-send lets it run out.
CLAIM_S = 2 * TRY_TIMEOUT_S
# A stopping worker lets the sends on their way finish for this long: one cut short is
# sent again by another worker once its claim runs out, and its receiver gets it twice.
STOP_GRACE_S = 5.0


class Deliveries:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        concurrency: int = CONCURRENCY,
        claim_s: float = CLAIM_S,
    ) -> None:
        self._store = store
        self._settings = settings
        self._concurrency = concurrency
        self._claim_s = claim_s
        self._poll_s = settings.reaper_interval_s

    async def run_forever(self) -> None:
        sending: set[asyncio.Task[None]] = set()
        async with open_client(self._settings.webhook_host_set) as client:
            try:
                while True:
                    raise_swallowed_cancel()
                    free = self._concurrency - len(sending)
                    claimed = await self._claim(free) if free > 0 else []
                    for row in claimed:
                        task = asyncio.create_task(self._send(client, row), name="webhook")
                        sending.add(task)
                        task.add_done_callback(sending.discard)
                    if 0 < free and len(claimed) < free:  # all that is due is on its way
                        await asyncio.sleep(self._poll_s)
                    else:  # every slot busy, or more may be due: claim when one frees
                        await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if sending:
                    await asyncio.wait(sending, timeout=STOP_GRACE_S)
                for task in sending:
                    task.cancel()
                await asyncio.gather(*sending, return_exceptions=True)

    async def _claim(self, limit: int) -> list[Any]:
        try:
            return list(await self._store.claim_deliveries(limit, self._claim_s))
        except StorageUnavailable as exc:
            log.warning("webhooks: could not look for due deliveries (%s)", exc)
            return []

    async def _send(self, client: httpx.AsyncClient, row: Any) -> None:
        try:
            await _deliver(client, self._store, self._settings, row)
        except StorageUnavailable as exc:  # its claim runs out, and the try is made again
            log.warning(
                "job %s: webhook try %d not recorded: %s", row["job_id"], row["attempt"], exc
            )
        except Exception:
            log.exception("job %s: webhook try %d failed", row["job_id"], row["attempt"])


async def _deliver(
    client: httpx.AsyncClient, store: Store, settings: Settings, row: object
) -> None:
    job_id, attempt, url = row["job_id"], row["attempt"], row["url"]  # type: ignore[index]
    job = await store.get_job(job_id)
    if job is None:
        return
    body = dumps({"type": "job.finished", "job": JobOut.of(job).model_dump(mode="json")})
    # the target is checked on the addresses the call connects to (jobcast.net)
    status_code, error = await call(client, url, body, row["webhook_secret"])  # type: ignore[index]
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
