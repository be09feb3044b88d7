"""Real Postgres and Redis for the whole suite, found or started as ``make run`` does.

A template database is built once from schema.sql; each test module that needs
a database clones its own from it.

The suite runs in parallel (``make test``: pytest-xdist, ``--dist loadfile``): one
worker runs each module whole, so a module's stack is launched once. Every worker
has its own template database, databases, Redis prefixes, ports (from the OS) and, where
no server answers, its own embedded Postgres and Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from jobcast.endpoints import Endpoints, provide
from jobcast.settings import load_settings
from jobcast.store import Store, apply_schema
from tests.chaos import PrivateRedis
from tests.silent_rig import MakeRig, rigs
from tests.support import ARTIFACTS, Stack, create_database, drop_database, launch

# The suite picks its own prefixes, ports and databases: settings from the caller's shell
# (a JOBCAST_REDIS_PREFIX, say) must not leak into it.
for _key in [k for k in os.environ if k.startswith("JOBCAST_") and k != "JOBCAST_EMBEDDED"]:
    del os.environ[_key]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules are handed to workers in this order: the browser modules (each a Chromium
    and a stack) take turns with the others, so that workers do not all start one at
    once; the same order on every worker, as xdist requires."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    browser = [m for m in modules if m.startswith("tests/browser/")]
    others = [m for m in modules if not m.startswith("tests/browser/")]
    order: list[str] = []
    while browser or others:
        order += others[:3] + browser[:1]
        others, browser = others[3:], browser[1:]
    items[:] = [item for module in order for item in modules[module]]


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    settings = load_settings()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:  # embedded servers, where they are needed, one per worker
        settings = settings.model_copy(update={"data_dir": settings.data_dir / worker})
    with provide(settings) as found:
        yield found


@pytest.fixture(scope="session")
async def template_db(endpoints: Endpoints) -> AsyncIterator[str]:
    name = f"jobcast_tpl_{os.getpid()}"
    dsn = await create_database(endpoints.database_url, name)
    await apply_schema(dsn)
    yield name
    await drop_database(endpoints.database_url, name)


DatabaseFactory = Callable[[], Awaitable[str]]


# the databases made and not yet dropped, each with the admin DSN that drops it
_undropped: list[tuple[str, str]] = []
# Postgres checkpoints at each DROP DATABASE, and fsyncs what every test wrote since the last:
# 2.5 s a drop on this machine with its cores busy (0.1 s idle). Drops at once share a
# checkpoint; a module's are dropped as it ends, not all of a worker's as the last test does.
_DROPS_AT_ONCE = 8


async def drop_undropped() -> None:
    gate = asyncio.Semaphore(_DROPS_AT_ONCE)

    async def drop(admin_dsn: str, name: str) -> None:
        async with gate:
            await drop_database(admin_dsn, name)

    made, _undropped[:] = list(_undropped), []
    await asyncio.gather(*(drop(admin_dsn, name) for admin_dsn, name in made))


@pytest.fixture(scope="session")
async def new_database(endpoints: Endpoints, template_db: str) -> AsyncIterator[DatabaseFactory]:
    """Make a fresh database cloned from the template, dropped when its module ends (no
    session-scoped fixture makes one)."""

    async def make() -> str:
        name = f"jobcast_t_{uuid.uuid4().hex[:16]}"
        _undropped.append((endpoints.database_url, name))
        return await create_database(endpoints.database_url, name, template=template_db)

    yield make
    await drop_undropped()


@pytest.fixture
async def database(new_database: DatabaseFactory) -> str:
    """A fresh database of its own, by its URL."""
    return await new_database()


@pytest.fixture
async def store(new_database: DatabaseFactory) -> AsyncIterator[Store]:
    """A store on a fresh database of its own (a module may define its own instead)."""
    async with Store.open(await new_database()) as opened:
        yield opened


@pytest.fixture(scope="module", autouse=True)
async def _drop_the_modules_databases() -> AsyncIterator[None]:
    yield
    if _undropped:
        await drop_undropped()


@pytest.fixture(scope="module")
async def stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """One web and one worker process, on a database and a Redis prefix of their own."""
    running = await launch(
        await new_database(), endpoints.redis_url, tmp_path_factory.mktemp("stack")
    )
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def artifacts() -> Iterator[str]:
    ARTIFACTS.mkdir(exist_ok=True)
    yield str(ARTIFACTS)


@pytest.fixture
async def make_rig(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MakeRig]:
    async with rigs(
        endpoints.redis_url, new_database, lambda: tmp_path_factory.mktemp("silent")
    ) as make:
        yield make


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, to stop, wipe and start again; killed after."""
    server = PrivateRedis()
    server.start()
    yield server
    server.kill()


# SUITE_CPU_REPORT=path: per module, a JSON line appended to path: its wall time, the CPU of
# the test process and of the processes it waited for (Chromium; not the forked ones, which
# tests/forks.py's server reaps), and the machine's busy CPU seconds over the module (every
# process: stacks, Postgres, Redis; run with -n 0 for that to be the module's alone)
_CPU_REPORT = os.environ.get("SUITE_CPU_REPORT", "")
_cpu_mark: list[float] = []


def _cpu_now() -> tuple[float, float, float, float]:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    with open("/proc/stat") as stat:  # user, nice, system, idle, iowait, irq, softirq, steal
        ticks = [int(n) for n in stat.readline().split()[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return (
        own.ru_utime + own.ru_stime,
        children.ru_utime + children.ru_stime,
        busy / os.sysconf("SC_CLK_TCK"),
        time.monotonic(),
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if not _CPU_REPORT:
        yield
        return
    if not _cpu_mark:
        _cpu_mark.extend(_cpu_now())
    yield
    module = item.nodeid.split("::", 1)[0]
    if nextitem is None or nextitem.nodeid.split("::", 1)[0] != module:
        now = _cpu_now()
        line = {
            "module": module,
            "worker": os.environ.get("PYTEST_XDIST_WORKER", ""),
            "own_s": round(now[0] - _cpu_mark[0], 2),
            "children_s": round(now[1] - _cpu_mark[1], 2),
            "machine_busy_s": round(now[2] - _cpu_mark[2], 2),
            "wall_s": round(now[3] - _cpu_mark[3], 2),
        }
        with open(_CPU_REPORT, "a") as out:
            out.write(json.dumps(line) + "\n")
        _cpu_mark[:] = now
