"""The nginx configuration of docs/deploy.md, run by a real nginx in front of two web
processes and two workers: watchers through it get every event, whichever web process
they land on, and keep every event when the web processes restart one at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from jobcast.endpoints import Endpoints
from tests.chaos import Watcher, chaos_env
from tests.conftest import DatabaseFactory
from tests.nginx import Nginx, location_lines, nginx_blocks
from tests.support import Stack, eventually, launch, submit

pytestmark = pytest.mark.topology


@dataclass
class Fronted:
    stack: Stack  # the first web process and the workers
    second: Stack  # the second web process
    nginx: Nginx
    via: Stack  # URLs through nginx, under /jobcast

    async def restart(self, name: str) -> None:
        """SIGTERM one web process, as systemd does, and start it again."""
        self.stack.stop(name)
        owner = self.stack if name == "web" else self.second
        owner.start(name)
        self.stack.procs[name] = owner.procs[name]
        await owner.wait_ready()


@pytest.fixture(scope="module")
async def fronted(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Fronted]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("nginx"),
        workers=2,
        **chaos_env(),
    )
    nginx: Nginx | None = None
    try:
        second = await stack.add_web()
        ports = [urlsplit(s.base_url).port or 80 for s in (stack, second)]
        nginx = Nginx(ports)
        nginx.start()
        via = Stack(
            base_url=f"{nginx.url}/jobcast",
            database_url=stack.database_url,
            redis_url=stack.redis_url,
            env=stack.env,
            log_dir=stack.log_dir,
        )
        await via.wait_ready()
        yield Fronted(stack, second, nginx, via)
    finally:
        if nginx is not None:
            nginx.stop()
        stack.close()


def test_both_pages_give_the_same_location_with_the_port_in_host() -> None:
    deploy = next(b for b in nginx_blocks("deploy.md") if "upstream jobcast" in b)
    embedding = next(b for b in nginx_blocks("embedding.md") if "location /jobcast/" in b)
    for block in (deploy, embedding):
        lines = location_lines(block)
        assert "proxy_set_header Host $http_host;" in lines  # $host drops the port
        assert "proxy_set_header Upgrade $http_upgrade;" in lines
        assert 'proxy_set_header Connection "upgrade";' in lines
    shared = set(location_lines(embedding)) - set(location_lines(deploy))
    assert not shared, f"embedding.md's location has what deploy.md's lacks: {shared}"


async def test_watchers_through_nginx_get_every_event_on_either_web_process(
    fronted: Fronted,
) -> None:
    token = await fronted.via.owner()
    async with fronted.via.client(token) as client:
        ids = [await submit(client, "demo", duration=1) for _ in range(4)]
    # round robin: the watchers land on both web processes
    watchers = [Watcher(fronted.via, token, job_id) for job_id in ids for _ in range(2)]
    await asyncio.gather(*(w.run(timeout_s=60) for w in watchers))
    for watcher in watchers:
        watcher.assert_gap_free()
        assert watcher.final_statuses == ["completed"]
    # every socket went through nginx, upgraded (101)
    upgraded = [line for line in fronted.nginx.log().splitlines() if "/jobcast/ws/jobs/" in line]
    assert len(upgraded) >= len(watchers) and all('" 101 ' in line for line in upgraded)


async def test_web_processes_restarted_one_at_a_time_leave_no_gap(fronted: Fronted) -> None:
    token = await fronted.via.owner()
    async with fronted.via.client(token) as client:
        job_id = await submit(client, "demo", duration=6)
        watcher = Watcher(fronted.via, token, job_id)
        watching = asyncio.create_task(watcher.run(timeout_s=60))
        for name in ("web", "web-2"):
            seen = len(watcher.events)

            async def more(seen: int = seen) -> bool:
                return len(watcher.events) >= seen + 2

            await eventually(more, timeout_s=20, what="events before a restart")
            await fronted.restart(name)
        await watching
        stored = (await client.get(f"/api/jobs/{job_id}/events")).json()["events"]
    watcher.assert_gap_free()
    assert watcher.events == stored
    assert watcher.final_statuses == ["completed"]
    assert 1001 in watcher.closes  # its web process went away, and it came back through nginx
