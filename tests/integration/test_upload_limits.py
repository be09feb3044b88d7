"""Upload limits against a real web process: a rate per owner, and a quota of bytes kept.

The rate is GCRA in Redis as for submits; the quota is counted in Postgres under a lock
per owner, so uploads sent at once cannot pass it together, and a request's files are
stored all or none.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from jobcast.endpoints import Endpoints
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.support import Stack, launch

BURST = 6
QUOTA_BYTES = 4096
SIZE = 1500  # three of them pass the quota, two do not
FITS = QUOTA_BYTES // SIZE


@pytest.fixture(scope="module")
async def limited(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("uploads"),
        workers=0,
        # one a minute after the burst: nothing refills while a test runs
        JOBCAST_UPLOAD_RATE_PER_MIN="1",
        JOBCAST_UPLOAD_BURST=str(BURST),
        JOBCAST_MAX_UPLOAD_BYTES_PER_OWNER=str(QUOTA_BYTES),
    )
    try:
        yield stack
    finally:
        stack.close()


def upload(client: httpx.AsyncClient, *sizes: int) -> asyncio.Task[httpx.Response]:
    files = [("file", (f"f{i}.csv", b"x" * size, "text/csv")) for i, size in enumerate(sizes)]
    return asyncio.ensure_future(client.post("/api/uploads", files=files))


async def test_an_owner_over_the_upload_rate_gets_429_with_retry_after(limited: Stack) -> None:
    fast, other = await limited.owner(), await limited.owner()
    async with limited.client(fast) as client, limited.client(other) as calm:
        within = [await upload(client, 10) for _ in range(BURST)]
        over = await upload(client, 10)
        elsewhere = await upload(calm, 10)
    assert [r.status_code for r in within] == [201] * BURST
    error = assert_error(over, 429, "too_many_requests")
    assert "uploads" in error["message"]
    assert int(over.headers["retry-after"]) >= 1
    assert elsewhere.status_code == 201, "the rate is per owner"


async def test_uploads_sent_at_once_stay_within_the_owners_quota(limited: Stack) -> None:
    owner, other = await limited.owner(), await limited.owner()
    async with limited.client(owner) as client, limited.client(other) as calm:
        answers = await asyncio.gather(*(upload(client, SIZE) for _ in range(FITS + 2)))
        elsewhere = await upload(calm, SIZE)
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * FITS + [413] * 2, [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 413)
    message = assert_error(refused, 413, "payload_too_large")["message"]
    assert str(QUOTA_BYTES) in message
    assert elsewhere.status_code == 201, "the quota is per owner"


async def test_a_request_over_the_quota_stores_none_of_its_files(limited: Stack) -> None:
    owner = await limited.owner()
    async with limited.client(owner) as client:
        too_much = await upload(client, *[SIZE] * (FITS + 1))
        after = [await upload(client, SIZE) for _ in range(FITS)]
    assert_error(too_much, 413, "payload_too_large")
    assert [r.status_code for r in after] == [201] * FITS, "the refused files took no room"
