"""The Python client against real web and worker processes.

The watch tests put a loopback TCP proxy between client and server, so the test
can drop the client's websocket mid-job, or refuse websockets altogether, the
way a flaky network or a proxy without websocket support would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from jobcast.client import (
    AsyncClient,
    BadRequest,
    Client,
    ClientError,
    Conflict,
    Event,
    JobCancelled,
    JobFailed,
    NotFinished,
    NotFound,
    Unauthorized,
    Unreachable,
)
from jobcast.endpoints import free_port
from tests.support import Stack

# quick reconnects and polls, so the tests do not wait on production pacing
FAST = {"reconnect_delay_s": 0.05, "max_reconnect_delay_s": 0.2, "poll_interval_s": 0.05}


class CuttableProxy:
    """A loopback TCP proxy that can drop the websockets through it, or refuse new ones.

    It notes the request line of every HTTP request that passes (a chunk from the
    client that starts with a method), so tests can see where each poll and each
    socket resumed.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.refuse_websockets = False
        self.request_lines: list[str] = []
        self.base_url = ""
        self._websockets: list[asyncio.StreamWriter] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"

    def afters(self, path: str) -> list[int]:
        """The ``after`` of each request for the path, in the order they came."""
        return [
            int(line.split("after=")[1].split()[0])
            for line in self.request_lines
            if f" {path}?after=" in line
        ]

    def cut_websockets(self) -> int:
        """Drop every open websocket at once, as a network failure would (no close frame)."""
        open_ones = [w for w in self._websockets if not w.is_closing()]
        for writer in open_ones:
            writer.transport.abort()
        self._websockets.clear()
        return len(open_ones)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        # with every connection aborted, each handler's reads end and it returns
        await asyncio.gather(*self._tasks)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        try:
            first = await reader.readline()
            websocket = first.startswith(b"GET /ws")
            if websocket and self.refuse_websockets:
                self.request_lines.append(first.decode(errors="replace").strip())
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            self._writers.append(up_writer)
            if websocket:
                self._websockets.append(writer)
            await asyncio.gather(
                self._pipe(reader, up_writer, first, note=True),
                self._pipe(up_reader, writer),
            )
        except OSError:
            pass
        finally:
            writer.transport.abort()
            self._tasks.discard(task)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        first: bytes = b"",
        note: bool = False,
    ) -> None:
        try:
            while chunk := first or await reader.read(65536):
                first = b""
                if note and chunk.split(b" ", 1)[0] in (b"GET", b"POST"):
                    self.request_lines.append(chunk.split(b"\r\n", 1)[0].decode(errors="replace"))
                writer.write(chunk)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()


@pytest.fixture(scope="module")
async def token(stack: Stack) -> str:
    """One owner for the module: new sessions per address are rate limited."""
    return await stack.owner()


@pytest.fixture
async def owner(stack: Stack, token: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(stack.base_url, token, **FAST) as client:
        yield client


@pytest.fixture
async def proxy(stack: Stack) -> AsyncIterator[CuttableProxy]:
    running = CuttableProxy(int(stack.env["PORT"]))
    await running.start()
    try:
        yield running
    finally:
        await running.close()


def assert_complete_run(events: list[Event], first_seq: int = 1) -> None:
    seqs = [e.seq for e in events]
    assert seqs == list(range(first_seq, first_seq + len(seqs))), seqs
    assert events[-1].final and events[-1].status == "completed"
    assert sum(e.final for e in events) == 1


async def test_submit_get_wait_result_and_list(stack: Stack) -> None:
    async with AsyncClient(stack.base_url, **FAST) as owner:
        token = await owner.create_session()
        assert owner.token == token
        await new_owner_scenario(owner)


async def new_owner_scenario(owner: AsyncClient) -> None:
    submitted = await owner.submit("demo", {"duration": 0.3}, priority=2)
    assert submitted.status == "pending"
    assert submitted.ws_url == f"/ws/jobs/{submitted.id}"

    job = await owner.get(submitted.id)
    assert job.id == submitted.id and job.type == "demo" and job.priority == 2
    assert [s.name for s in job.steps] == ["validate", "fetch", "analyze", "report"]

    done = await owner.wait(submitted.id, timeout_s=30)
    assert done.status == "completed" and done.final and done.progress == 100
    assert all(s.status == "completed" for s in done.steps)
    result = await owner.result(submitted.id)
    assert result["duration"] == 0.3 and result["summary"]

    noop = await owner.submit("noop")
    listed = await owner.list()
    assert [j.id for j in listed] == [noop.id, submitted.id]
    assert [j.id for j in await owner.list(type="demo")] == [submitted.id]
    assert [j.id for j in await owner.list(limit=1)] == [noop.id]


async def test_result_says_not_finished_then_cancelled(owner: AsyncClient) -> None:
    submitted = await owner.submit("demo", {"duration": 1}, delay_seconds=600)
    with pytest.raises(NotFinished) as early:
        await owner.result(submitted.id)
    assert early.value.status == "pending"

    await owner.cancel(submitted.id)
    with pytest.raises(JobCancelled) as cancelled:
        await owner.result(submitted.id)
    assert cancelled.value.job.status == "cancelled" and cancelled.value.status == 409
    with pytest.raises(Conflict, match="already cancelled"):
        await owner.cancel(submitted.id)
    assert (await owner.wait(submitted.id, timeout_s=5)).status == "cancelled"


async def test_failed_job_raises_with_its_error(owner: AsyncClient) -> None:
    submitted = await owner.submit("demo", {"duration": 0.2, "fail_step": "analyze"})
    job = await owner.wait(submitted.id, timeout_s=30)
    assert job.status == "failed"
    with pytest.raises(JobFailed) as failed:
        await owner.result(submitted.id)
    assert failed.value.error is not None
    assert failed.value.error.category == "permanent"
    assert "analyze" in failed.value.error.message
    assert "analyze" in str(failed.value)


async def test_api_errors_become_typed_exceptions(stack: Stack, owner: AsyncClient) -> None:
    with pytest.raises(NotFound) as missing:
        await owner.get("00000000-0000-0000-0000-000000000000")
    assert (missing.value.status, missing.value.code) == (404, "not_found")

    with pytest.raises(BadRequest) as unknown:
        await owner.submit("no-such-type")
    assert unknown.value.status == 422 and "no-such-type" in unknown.value.message

    with pytest.raises(BadRequest) as bad_input:
        await owner.submit("demo", {"duration": "long"})
    assert bad_input.value.details and bad_input.value.details[0]["field"]

    async with AsyncClient(stack.base_url, "not-a-token", **FAST) as stranger:
        with pytest.raises(Unauthorized) as refused:
            await stranger.list()
        assert refused.value.status == 401
        submitted = await owner.submit("noop")
        with pytest.raises(Unauthorized):
            async with aclosing(stranger.watch(submitted.id)) as events:
                async for _event in events:
                    pass

    async with AsyncClient(f"http://127.0.0.1:{free_port()}", "t") as nowhere:
        with pytest.raises(Unreachable, match="cannot reach"):
            await nowhere.get("x")


async def test_job_types_describe_the_builtins(owner: AsyncClient) -> None:
    types = {t.type: t for t in await owner.job_types()}
    assert {"noop", "demo"} <= set(types)
    assert [s.name for s in types["demo"].steps] == ["validate", "fetch", "analyze", "report"]
    assert "duration" in types["demo"].input_schema["properties"]


async def test_watch_of_a_finished_job_replays_after_n_and_ends(owner: AsyncClient) -> None:
    submitted = await owner.submit("demo", {"duration": 0.2})
    job = await owner.wait(submitted.id, timeout_s=30)

    async def collect(after: int) -> list[Event]:
        async with aclosing(owner.watch(submitted.id, after=after)) as events:
            return [e async for e in events]

    everything = await collect(0)
    assert_complete_run(everything)
    assert everything[-1].seq == job.seq
    assert everything == await owner.events(submitted.id)
    half = job.seq // 2
    assert [e.seq for e in await collect(half)] == list(range(half + 1, job.seq + 1))
    assert await collect(job.seq) == []


async def test_a_watch_closed_early_ends_at_once_with_its_socket_full(
    owner: AsyncClient,
) -> None:
    """A caller that stops reading after the first event, the rest of a finished job's 31
    already sent to it: closing the watch does not wait for the server's close frame
    behind the unread messages (the socket library's 10 s close timeout)."""
    submitted = await owner.submit("demo", {"duration": 0.2})
    await owner.wait(submitted.id, timeout_s=30)
    async with aclosing(owner.watch(submitted.id)) as events:
        first = await anext(events)
        await asyncio.sleep(0.3)  # the replay's other 30 events and the close reach the client
        started = asyncio.get_running_loop().time()
        async with asyncio.timeout(5):
            await events.aclose()
    assert first.seq == 1
    assert asyncio.get_running_loop().time() - started < 2


async def test_watch_resumes_after_a_dropped_socket_without_gap_or_duplicate(
    owner: AsyncClient, proxy: CuttableProxy
) -> None:
    async with AsyncClient(proxy.base_url, owner.token, **FAST) as client:
        submitted = await client.submit("demo", {"duration": 2})
        events: list[Event] = []
        cuts = 0
        async with aclosing(client.watch(submitted.id)) as stream:
            async for event in stream:
                events.append(event)
                # drop the socket twice while the job runs: once early, once midway
                if event.seq in (3, 10) and not event.final:
                    cuts += proxy.cut_websockets()
    assert cuts == 2
    assert_complete_run(events)
    # each socket resumes after the last event handed out (frames already received
    # before a cut are still handed out, so it may be a little after the cut)
    afters = proxy.afters(f"/ws/jobs/{submitted.id}")
    assert len(afters) == 3 and afters[0] == 0, afters
    assert 3 <= afters[1] < 10 <= afters[2] < events[-1].seq, afters


async def test_watch_falls_back_to_polling_when_websockets_keep_failing(
    owner: AsyncClient, proxy: CuttableProxy
) -> None:
    proxy.refuse_websockets = True
    async with AsyncClient(
        proxy.base_url, owner.token, socket_failures_before_polling=2, **FAST
    ) as client:
        submitted = await client.submit("demo", {"duration": 0.5})
        async with aclosing(client.watch(submitted.id)) as stream:
            events = [e async for e in stream]
    assert_complete_run(events)
    assert proxy.afters(f"/ws/jobs/{submitted.id}") == [0, 0]
    polls = proxy.afters(f"/api/jobs/{submitted.id}/events")
    assert polls[0] == 0 and polls == sorted(polls), polls


async def test_polling_picks_up_where_the_socket_left_off(
    owner: AsyncClient, proxy: CuttableProxy
) -> None:
    async with AsyncClient(
        proxy.base_url, owner.token, socket_failures_before_polling=2, **FAST
    ) as client:
        submitted = await client.submit("demo", {"duration": 1})
        events: list[Event] = []
        async with aclosing(client.watch(submitted.id)) as stream:
            async for event in stream:
                events.append(event)
                if event.seq == 4:
                    proxy.refuse_websockets = True
                    proxy.cut_websockets()
    assert_complete_run(events)
    sockets = proxy.afters(f"/ws/jobs/{submitted.id}")
    polls = proxy.afters(f"/api/jobs/{submitted.id}/events")
    assert len(sockets) == 2 and sockets[0] == 0 and sockets[1] >= 4, sockets
    assert polls and polls[0] == sockets[1], (sockets, polls)


async def test_wait_gives_up_after_its_timeout(owner: AsyncClient) -> None:
    submitted = await owner.submit("noop", delay_seconds=600)
    with pytest.raises(TimeoutError):
        await owner.wait(submitted.id, timeout_s=0.3)
    await owner.cancel(submitted.id)


def test_sync_client_offers_the_same_calls(stack: Stack) -> None:
    with Client(stack.base_url, **FAST) as client:
        token = client.create_session()
        assert client.token == token
        submitted = client.submit("demo", {"duration": 0.3})
        events = list(client.watch(submitted.id))
        assert_complete_run(events)
        assert client.wait(submitted.id, timeout_s=10).status == "completed"
        assert client.result(submitted.id)["duration"] == 0.3
        assert [j.id for j in client.list()] == [submitted.id]
        assert client.events(submitted.id, after=len(events) - 1) == events[-1:]
        assert "demo" in {t.type for t in client.job_types()}

        # leaving a watch early closes its socket and leaves the client usable
        second = client.submit("demo", {"duration": 0.3})
        for event in client.watch(second.id):
            assert event.seq == 1
            break
        assert client.get(second.id).id == second.id
        with pytest.raises(NotFound):
            client.cancel("00000000-0000-0000-0000-000000000000")


async def test_sync_client_runs_beside_a_loop_but_not_inside_it(stack: Stack, token: str) -> None:
    client = Client(stack.base_url, token)
    # inside a running loop it says so, rather than fail deep inside asyncio
    with pytest.raises(ClientError, match="use AsyncClient"):
        client.job_types()

    def in_a_thread() -> str:
        submitted = client.submit("noop")
        return client.wait(submitted.id, timeout_s=10).status

    try:
        assert await asyncio.to_thread(in_a_thread) == "completed"
    finally:
        await asyncio.to_thread(client.close)
    with pytest.raises(ClientError, match="closed"):
        client.job_types()
