"""The ``jobcast`` command line, run as a real process against real web and worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from jobcast.endpoints import Endpoints, free_port
from jobcast.settings import ROOT
from tests.support import Stack, eventually, launch, run_cli

ADMIN_TOKEN = f"admin-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
async def stack(
    endpoints: Endpoints,
    new_database: Callable[[], Awaitable[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """The suite's stack, with an admin token so that ``jobcast stats`` can be tried."""
    running = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("stack"),
        JOBCAST_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def config_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the command keeps its tokens for this module (never the real home)."""
    return tmp_path_factory.mktemp("config")


def cli_env(stack: Stack, config_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
    env.update(
        JOBCAST_URL=stack.base_url,
        XDG_CONFIG_HOME=str(config_home),
        COLUMNS="200",
        PYTHONIOENCODING="utf-8",
    )
    env.update(extra)
    return env


def jobcast(
    stack: Stack, config_home: Path, *args: str, input: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=cli_env(stack, config_home, **extra), input=input)


def one_error_line(run: subprocess.CompletedProcess[str]) -> str:
    """The one line the command said went wrong; fails if it said more, or a traceback."""
    assert "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("jobcast: ")]
    assert len(errors) == 1, run.stderr
    return errors[0]


def test_help_names_every_command(stack: Stack, config_home: Path) -> None:
    run = jobcast(stack, config_home, "--help")
    assert run.returncode == 0, run.stderr
    for command in (
        "submit",
        "submit-batch",
        "batch",
        "watch",
        "jobs",
        "show",
        "cancel",
        "types",
        "stats",
        "dev",
        "web",
        "worker",
        "migrate",
        "cleanup",
        "config",
    ):
        assert command in run.stdout
    sub = jobcast(stack, config_home, "submit", "--help")
    assert sub.returncode == 0 and "--watch" in sub.stdout and "--input" in sub.stdout


def test_submit_watch_prints_the_result_and_exits_0(stack: Stack, config_home: Path) -> None:
    run = jobcast(stack, config_home, "submit", "demo", "--input", '{"duration": 0.5}', "--watch")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["summary"] and result["duration"] == 0.5
    for step in ("validate", "fetch", "analyze", "report"):
        assert f"✓ {step}" in run.stderr


def test_a_failed_job_exits_1_with_its_error_on_one_line(stack: Stack, config_home: Path) -> None:
    run = jobcast(
        stack,
        config_home,
        "submit",
        "demo",
        "-w",
        "--input",
        '{"duration": 0.2, "fail_step": "analyze"}',
    )
    assert run.returncode == 1
    assert run.stdout == ""
    line = one_error_line(run)
    assert "failed at step analyze" in line and "the analyze step failed, as asked" in line


def test_jobs_show_cancel_and_watch_of_a_cancelled_job(stack: Stack, config_home: Path) -> None:
    submitted = jobcast(stack, config_home, "submit", "demo", "--delay", "600")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert str(uuid.UUID(job_id)) == job_id

    listed = jobcast(stack, config_home, "jobs")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if job_id in line)
    assert "demo" in row and "pending" in row
    pending = jobcast(stack, config_home, "jobs", "--json", "--status", "pending")
    assert [j["id"] for j in json.loads(pending.stdout)] == [job_id]

    shown = jobcast(stack, config_home, "show", job_id)
    assert shown.returncode == 0 and "pending" in shown.stdout and "Fetch data" in shown.stdout

    cancelled = jobcast(stack, config_home, "cancel", job_id)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"cancelled {job_id}"
    again = jobcast(stack, config_home, "cancel", job_id)
    assert again.returncode == 4 and "already cancelled" in one_error_line(again)

    watched = jobcast(stack, config_home, "watch", job_id)
    assert watched.returncode == 3 and "was cancelled" in one_error_line(watched)
    assert json.loads(jobcast(stack, config_home, "show", job_id, "--json").stdout)["status"] == (
        "cancelled"
    )


def test_submit_and_show_print_the_job_page(stack: Stack, config_home: Path) -> None:
    submitted = jobcast(stack, config_home, "submit", "demo", "--delay", "600")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()  # stdout stays the id alone, for scripts
    page = f"{stack.base_url}/jobs/{job_id}"
    assert f"its page: {page}" in submitted.stderr
    served = httpx.get(page, timeout=10)
    assert served.status_code == 200 and "text/html" in served.headers["content-type"]

    shown = jobcast(stack, config_home, "show", job_id)
    assert shown.returncode == 0 and page in shown.stdout
    public = "https://jobs.example.com/"
    behind = jobcast(stack, config_home, "show", job_id, JOBCAST_PUBLIC_URL=public)
    assert f"https://jobs.example.com/jobs/{job_id}" in behind.stdout, behind.stdout
    flag = jobcast(stack, config_home, "--public-url", "http://proxy:8080", "submit", "noop", "-w")
    assert flag.returncode == 0 and "its page: http://proxy:8080/jobs/" in flag.stderr, flag.stderr


async def test_with_an_app_key_the_link_carries_a_read_token_for_that_job_alone(
    stack: Stack, config_home: Path
) -> None:
    keys = jobcast(
        stack, config_home, "keys", "create", "--name", "cli-link", DATABASE_URL=stack.database_url
    )
    assert keys.returncode == 0, keys.stderr
    key = dict(line.split(":", 1) for line in keys.stdout.splitlines())["key"].strip()
    submitted = jobcast(stack, config_home, "--token", key, "submit", "noop", "-w")
    assert submitted.returncode == 0, submitted.stderr
    link = re.search(r"its page: (\S+)", submitted.stderr)
    assert link, submitted.stderr
    page, _, fragment = link.group(1).partition("#token=")
    job_id = page.rsplit("/", 1)[1]
    assert page == f"{stack.base_url}/jobs/{job_id}" and fragment.count(".") == 2  # a JWT
    async with stack.client(fragment) as client:
        seen = await client.get(f"/api/jobs/{job_id}")
        assert seen.status_code == 200 and seen.json()["status"] == "completed"
        assert (await client.post(f"/api/jobs/{job_id}/cancel")).status_code == 403  # read only
    other = jobcast(stack, config_home, "--token", key, "submit", "noop")
    async with stack.client(fragment) as client:  # another job of the key: not in scope
        assert (await client.get(f"/api/jobs/{other.stdout.strip()}")).status_code == 404
    shown = jobcast(stack, config_home, "--token", key, "show", job_id)
    assert f"{page}#token=" in shown.stdout, shown.stdout


def test_unknown_job_and_unknown_type_are_refused_with_4(stack: Stack, config_home: Path) -> None:
    unknown_id = str(uuid.uuid4())
    missing = jobcast(stack, config_home, "show", unknown_id)
    assert missing.returncode == 4 and f"no job {unknown_id}" in one_error_line(missing)
    unknown = jobcast(stack, config_home, "submit", "no-such-type")
    assert unknown.returncode == 4 and "no-such-type" in one_error_line(unknown)


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]", "@/no/such/file.json"])
def test_bad_input_is_one_line_and_exit_2(stack: Stack, config_home: Path, bad: str) -> None:
    run = jobcast(stack, config_home, "submit", "demo", "--input", bad)
    assert run.returncode == 2 and run.stdout == ""
    assert "--input" in one_error_line(run)


def test_a_bad_command_line_is_one_line_and_exit_2(stack: Stack, config_home: Path) -> None:
    for args in (["submit"], ["no-such-command"], ["jobs", "--limit", "zero"]):
        run = jobcast(stack, config_home, *args)
        assert run.returncode == 2, args
        one_error_line(run)


def test_submit_batch_from_a_file_watched_to_its_end(
    stack: Stack, config_home: Path, tmp_path: Path
) -> None:
    lines = [json.dumps({"type": "demo", "input": {"duration": d}}) for d in (0.2, 0.4)]
    lines.append(json.dumps({"type": "demo", "input": {"duration": 0.2, "fail_step": "fetch"}}))
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    run = jobcast(stack, config_home, "submit-batch", str(path), "--watch")
    assert run.returncode == 1, run.stderr  # one of its jobs failed
    assert "2 completed, 1 failed" in run.stdout
    assert run.stdout.count("completed") == 3 and run.stdout.count("failed") == 2  # + table

    plain = jobcast(stack, config_home, "submit-batch", "-", input="\n".join(lines[:2]))
    assert plain.returncode == 0, plain.stderr
    batch_id, *job_ids = plain.stdout.split()
    assert len(job_ids) == 2
    shown = jobcast(stack, config_home, "batch", batch_id, "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert (view["id"], [j["id"] for j in view["jobs"]]) == (batch_id, job_ids)


def test_a_bad_batch_file_is_one_line_and_nothing_is_stored(
    stack: Stack, config_home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"type": "demo"}\n{"type": "demo", "input": {"duration": "long"}}\n')
    refused = jobcast(stack, config_home, "submit-batch", str(path))
    assert refused.returncode == 4 and "jobs.1" in one_error_line(refused)
    path.write_text('{"type": "demo"}\nnot json\n')
    broken = jobcast(stack, config_home, "submit-batch", str(path))
    assert broken.returncode == 2 and "line 2" in one_error_line(broken)
    missing = jobcast(stack, config_home, "batch", str(uuid.uuid4()))
    assert missing.returncode == 4, missing.stderr
    one_error_line(missing)


def test_the_token_is_created_once_kept_private_and_renewed(stack: Stack, tmp_path: Path) -> None:
    first = jobcast(stack, tmp_path, "jobs")
    assert first.returncode == 0 and "new owner session" in first.stderr
    path = tmp_path / "jobcast" / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = json.loads(path.read_text())[stack.base_url]

    again = jobcast(stack, tmp_path, "jobs")
    assert again.returncode == 0 and "new owner session" not in again.stderr

    path.write_text(json.dumps({stack.base_url: "a-token-never-made"}))
    stale = jobcast(stack, tmp_path, "jobs")
    assert stale.returncode == 4 and "forgotten" in one_error_line(stale)
    renewed = jobcast(stack, tmp_path, "jobs")
    assert renewed.returncode == 0 and "new owner session" in renewed.stderr
    assert json.loads(path.read_text())[stack.base_url] not in (token, "a-token-never-made")

    explicit = jobcast(stack, tmp_path, "--token", "wrong", "jobs")
    assert explicit.returncode == 4 and "not known" in one_error_line(explicit)


def test_an_unreachable_server_is_one_line_and_exit_5(stack: Stack, config_home: Path) -> None:
    run = jobcast(
        stack,
        config_home,
        "--url",
        f"http://127.0.0.1:{free_port()}",
        "jobs",
        JOBCAST_TOKEN="some-token",
    )
    assert run.returncode == 5 and "cannot reach" in one_error_line(run)


def test_config_shows_settings_without_secrets(stack: Stack, config_home: Path) -> None:
    run = jobcast(
        stack,
        config_home,
        "config",
        DATABASE_URL="postgresql://u:supersecret@h/db",
        REDIS_URL="redis://:redispass@h:6379/0",
        JOBCAST_ADMIN_TOKEN="admin-secret-value",
        JOBCAST_TOKEN="owner-secret-value",
        JOBCAST_RETENTION_FAILED_DAYS="3",
        JOBCAST_PUBLIC_URL="https://jobs.example.com",
    )
    assert run.returncode == 0, run.stderr
    output = run.stdout + run.stderr
    # a client key, not a setting of the service: shown, never refused as unknown
    assert ["JOBCAST_PUBLIC_URL", "https://jobs.example.com"] in [
        line.split() for line in run.stdout.splitlines()
    ]
    for secret in ("supersecret", "redispass", "admin-secret-value", "owner-secret-value"):
        assert secret not in output
    assert "postgresql://u:***@h/db" in output
    assert any(
        line.split()[:2] == ["JOBCAST_RETENTION_FAILED_DAYS", "3.0"]
        for line in run.stdout.splitlines()
    )

    bad = jobcast(stack, config_home, "config", JOBCAST_RETENTION_FAILED_DAYZ="3")
    assert bad.returncode == 2 and "JOBCAST_RETENTION_FAILED_DAYZ" in one_error_line(bad)


def test_stats_with_the_admin_token(stack: Stack, tmp_path: Path) -> None:
    def completed() -> int:
        run = jobcast(stack, tmp_path, "stats", "--json", JOBCAST_ADMIN_TOKEN=ADMIN_TOKEN)
        assert run.returncode == 0, run.stderr  # a route that went away fails here
        return int(json.loads(run.stdout)["by_status"].get("completed", 0))

    before = completed()
    done = jobcast(stack, tmp_path, "submit", "noop", "--watch")
    assert done.returncode == 0, done.stderr
    assert completed() == before + 1
    table = jobcast(stack, tmp_path, "stats", JOBCAST_ADMIN_TOKEN=ADMIN_TOKEN)
    assert table.returncode == 0 and "by_status.completed" in table.stdout

    without = jobcast(stack, tmp_path, "stats")
    assert without.returncode == 2 and "admin token" in one_error_line(without)
    owner_token = json.loads((tmp_path / "jobcast" / "tokens.json").read_text())[stack.base_url]
    wrong = jobcast(stack, tmp_path, "stats", "--admin-token", owner_token)
    assert wrong.returncode == 4
    assert ADMIN_TOKEN not in one_error_line(wrong) and owner_token not in wrong.stderr


def test_migrate_applies_the_schema_or_names_the_database(stack: Stack, config_home: Path) -> None:
    run = jobcast(stack, config_home, "migrate", DATABASE_URL=stack.database_url)
    assert run.returncode == 0, run.stderr
    assert "schema applied" in run.stdout

    nowhere = f"postgresql://u:dbpassword@127.0.0.1:{free_port()}/db"
    down = jobcast(stack, config_home, "migrate", DATABASE_URL=nowhere)
    assert down.returncode == 5
    line = one_error_line(down)
    assert "127.0.0.1" in line and "dbpassword" not in down.stderr + down.stdout


async def test_web_runs_even_with_the_client_keys_set(stack: Stack, config_home: Path) -> None:
    port = str(free_port())
    env = {**stack.env, "PORT": port, "JOBCAST_URL": stack.base_url, "JOBCAST_TOKEN": "x"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobcast.cli",
        "web",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def healthy() -> bool:
                if proc.returncode is not None:
                    raise AssertionError(f"jobcast web exited with {proc.returncode}")
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, timeout_s=30, what="jobcast web answers /healthz")
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.communicate()


def test_cleanup_deletes_finished_jobs_past_retention(stack: Stack, tmp_path: Path) -> None:
    submitted = jobcast(stack, tmp_path, "submit", "noop", "--watch")
    assert submitted.returncode == 0, submitted.stderr
    done = json.loads(jobcast(stack, tmp_path, "jobs", "--json").stdout)[0]["id"]

    kept = jobcast(stack, tmp_path, "cleanup", DATABASE_URL=stack.database_url)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.strip() == "deleted 0 finished jobs past their retention"
    assert jobcast(stack, tmp_path, "show", done).returncode == 0

    # a retention of about a millisecond: every job finished before now is past it
    swept = jobcast(
        stack,
        tmp_path,
        "cleanup",
        DATABASE_URL=stack.database_url,
        JOBCAST_RETENTION_COMPLETED_DAYS="0.00000001",
    )
    assert swept.returncode == 0, swept.stderr
    assert int(swept.stdout.split()[1]) >= 1
    gone = jobcast(stack, tmp_path, "show", done)
    assert gone.returncode == 4 and "no job" in one_error_line(gone)
