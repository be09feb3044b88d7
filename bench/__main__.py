"""``python -m bench [--quick]``: run every benchmark and write docs/benchmarks.md
(``--quick``: .jobcast/benchmarks-quick.md, leaving the full run's page as it is).

Finds or starts Postgres and Redis as ``make run`` does, makes a database and a
Redis prefix for the run, starts one web process and one worker the way
``make run`` does, runs the benchmarks one after the other (each within a time
budget, each leaving one web process and one idle worker behind), then stops
every process it started, drops the database and deletes its Redis keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import shlex
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis
import uvloop

from bench import (
    batches,
    connections,
    console,
    eventrate,
    events,
    fairness,
    fanout,
    peers,
    pgbouncer,
    polling,
    running,
    scaleout,
    streams,
    submit,
    throughput,
    watched,
)
from bench.cpu import CpuMeter
from bench.harness import (
    FULL,
    QUICK,
    BenchError,
    Cluster,
    Run,
    Scale,
    Section,
    describe_machine,
    forget_redis_keys,
    load_average,
    raise_file_limit,
    require_loopback,
    scratch_database,
    with_endpoints,
)
from bench.report import render
from jobcast.endpoints import Endpoints, provide
from jobcast.errors import JobcastError
from jobcast.settings import ROOT, Settings, load_settings

log = logging.getLogger("bench")

Benchmark = Callable[[Run, Section], Awaitable[None]]

FULL_OUTPUT = ROOT / "docs" / "benchmarks.md"
# a quick run's figures are a smoke check: kept beside the venv, out of docs/
QUICK_OUTPUT = ROOT / ".jobcast" / "benchmarks-quick.md"

BENCHMARKS: tuple[tuple[int, str, Benchmark], ...] = (
    (1, "End-to-end throughput", throughput.run),
    (2, "Submit latency", submit.run),
    (3, "Event latency, worker to browser", events.run),
    (4, "Connections", connections.run),
    (5, "Polling", polling.run),
    (6, "Scale-out", scaleout.run),
    (7, "A watched job runs as fast", watched.run),
    (8, "Streamed output", streams.run),
    (9, "Events per second, one worker and one web process", eventrate.run),
    (10, "One job, a crowd of watchers", fanout.run),
    (11, "The peers: Celery, SAQ, procrastinate", peers.run),
    (12, "Batches", batches.run),
    (13, "Behind PgBouncer", pgbouncer.run),
    (14, "Held jobs", fairness.held),
    (15, "Fairness under a backlog", fairness.fairness),
    (16, "Long jobs running", running.run),
    (17, "An open operator console, a month of jobs kept", console.run),
)
# the benchmarks that run without the run's worker (they stop it, or use their own): the
# settle before them does not start it again, only for them to stop it (a start is seconds)
WITHOUT_WORKER = frozenset({2, 8, 11, 13, 14, 15, 16, 17})


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure jobcast next to its raw parts and write docs/benchmarks.md.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller counts: the whole run takes under two minutes"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated benchmark numbers to run (default: all)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds each benchmark may take (default: 45 quick, 240 full; more on a loaded "
        "machine)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the table (default: docs/benchmarks.md; with --quick, "
        f"{QUICK_OUTPUT.relative_to(ROOT)}, so that a quick run never replaces the full "
        "figures)",
    )
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = QUICK_OUTPUT if args.quick else FULL_OUTPUT
    known = {number for number, _title, _run in BENCHMARKS}
    try:
        args.only = {int(n) for n in args.only.split(",") if n.strip()} or known
    except ValueError:
        parser.error(f"--only takes numbers like 1,3; got {args.only!r}")
    if not args.only <= known:
        parser.error(
            f"--only: no benchmark {sorted(args.only - known)}; there are 1 to {max(known)}"
        )
    return args


async def run_one(run: Run, number: int, title: str, benchmark: Benchmark) -> Section:
    section = Section(number, title)
    log.info("%d. %s", number, title)
    started = time.monotonic()
    try:
        async with asyncio.timeout(run.scale.budget_s):
            await benchmark(run, section)
    except TimeoutError:
        section.error = f"did not finish within {run.scale.budget_s:g} s"
    except Exception as exc:  # one benchmark failing must not lose the others' figures
        log.exception("%d. %s failed", number, title)
        section.error = f"{type(exc).__name__}: {exc}"
    if section.error:
        log.error("%d. %s: %s", number, title, section.error)
    else:
        log.info("%d. %s: done in %.1f s", number, title, time.monotonic() - started)
    return section


async def run_all(
    settings: Settings, endpoints: Endpoints, scale: Scale, only: set[int], log_dir: Path
) -> tuple[list[Section], dict[str, str]]:
    main_task = asyncio.current_task()
    if main_task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    prefix = log_dir.name
    for key, url in (("DATABASE_URL", endpoints.database_url), ("REDIS_URL", endpoints.redis_url)):
        require_loopback(key, url)
    async with scratch_database(endpoints.database_url) as database_url:
        ours = settings.model_copy(
            update={
                "database_url": database_url,
                "redis_url": endpoints.redis_url,
                "redis_prefix": prefix,
                "host": "127.0.0.1",
            }
        )
        cluster = Cluster(ours, with_endpoints(endpoints, database_url), log_dir)
        db = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        redis = aioredis.Redis.from_url(endpoints.redis_url)
        run = Run(ours, scale, cluster, db, redis)
        run.cpu = await CpuMeter.find(db, redis, cluster.procs)
        sections: list[Section] = []
        machine: dict[str, str] = {}
        try:
            machine.update(await describe_machine(db, redis))
            chosen = [b for b in BENCHMARKS if b[0] in only]
            starts = [cluster.start_web("web")]
            if chosen and chosen[0][0] not in WITHOUT_WORKER:
                starts.append(cluster.start_worker("worker"))
            await asyncio.gather(*starts)
            broken: str | None = None
            following = [n for n, _, _ in chosen[1:]] + [None]
            for (number, title, benchmark), then in zip(chosen, following, strict=True):
                if broken is not None:
                    sections.append(Section(number, title, error=f"skipped: {broken}"))
                    continue
                sections.append(await run_one(run, number, title, benchmark))
                try:
                    await run.settle(worker=then is not None and then not in WITHOUT_WORKER)
                except BenchError as exc:
                    broken = f"the service could not be brought back to one idle pair: {exc}"
                    log.error("%s", broken)
        finally:
            machine["load_end"] = load_average()
            try:
                await cluster.stop_all()
            finally:
                cluster.kill_all()
                job_ids = [str(r["id"]) for r in await db.fetch("SELECT id FROM jobs")]
                await forget_redis_keys(redis, prefix, job_ids)
                await db.close()
                await redis.aclose()
    return sections, machine


def describe_services(endpoints: Endpoints) -> str:
    def one(name: str, url: str, embedded: bool) -> str:
        parts = urlsplit(url)
        if parts.hostname is None:
            where = "a local socket"
        else:
            where = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
        return f"{name} at {where} ({'embedded, started for the run' if embedded else 'found'})"

    return (
        "; ".join(
            [
                one("Postgres", endpoints.database_url, endpoints.embedded_postgres),
                one("Redis", endpoints.redis_url, endpoints.embedded_redis),
            ]
        )
        + "; a fresh database and Redis prefix for the run, removed afterwards"
    )


def shown_command(args: argparse.Namespace) -> str:
    """The command that made the table (without --output, which only says where it went)."""
    python = Path(sys.executable)
    if python.is_relative_to(ROOT):
        python = python.relative_to(ROOT)
    shown = [str(python), "-m", "bench"]
    if args.quick:
        shown.append("--quick")
    if args.budget is not None:
        shown += ["--budget", f"{args.budget:g}"]
    if args.only != {number for number, _title, _run in BENCHMARKS}:
        shown += ["--only", ",".join(str(n) for n in sorted(args.only))]
    return shlex.join(shown)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s bench: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    scale = QUICK if args.quick else FULL
    if args.budget is not None:
        scale = dataclasses.replace(scale, budget_s=args.budget)
    started = datetime.now(UTC)
    clock = time.monotonic()
    try:
        settings = load_settings()
    except JobcastError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    # the run's Redis prefix names its log folder too
    log_dir = settings.data_dir / "bench" / f"bench{uuid.uuid4().hex[:10]}"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        raise_file_limit()  # before any process starts: they inherit it
        with (
            provide(settings) as endpoints,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            sections, machine = runner.run(run_all(settings, endpoints, scale, args.only, log_dir))
            services = describe_services(endpoints)
    except (JobcastError, BenchError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        print(f"bench: logs in {log_dir}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; every process it started is stopped", file=sys.stderr)
        remove_logs(log_dir)
        return 130
    text = render(
        sections=sections,
        machine=machine,
        services=services,
        command=shown_command(args),
        mode=scale.name,
        started=started,
        elapsed_s=time.monotonic() - clock,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    print(f"bench: written to {args.output}", file=sys.stderr)
    failed = [s for s in sections if s.error is not None]
    if failed:
        print(f"bench: {len(failed)} benchmark(s) not measured; logs in {log_dir}", file=sys.stderr)
        return 1
    remove_logs(log_dir)
    return 0


def remove_logs(log_dir: Path) -> None:
    shutil.rmtree(log_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        log_dir.parent.rmdir()  # only when no earlier run left its logs there


if __name__ == "__main__":
    sys.exit(main())
