"""Every code block of README.md and docs/ is run against a real stack, or says why not.

``sh`` blocks run in bash (curl, jq and the ``jobcast`` command) and ``python`` blocks
in a fresh interpreter, against real web and worker processes on their own database;
``json`` blocks are parsed, and a submit's body is read by the API's own model. A
block that cannot run here carries a marker (tests/doc_snippets.py lists them) whose
claim is checked instead. A new block without either fails here, naming its line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from jobcast.model import SubmitRequest
from jobcast.settings import ROOT, load_settings
from jobcast.store import Store
from tests import forks
from tests.doc_snippets import Snippet, every_snippet
from tests.support import Stack, eventually

SNIPPETS = every_snippet()
DOC_PORT = "8000"  # the port the docs' examples name
SALES_CSV = "month,units,revenue\n" + "".join(
    f"{m},{10 + m},{(10 + m) * 3.5}\n" for m in range(1, 13)
)


def ids(snippet: Snippet) -> str:
    return snippet.where


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the blocks run: the files they name (input.json, sales.csv) are there."""
    where = tmp_path_factory.mktemp("snippets")
    (where / "input.json").write_text('{"duration": 0.3}')
    (where / "sales.csv").write_text(SALES_CSV)
    (where / "config").mkdir()
    return where


class Jobs:
    """Jobs in the state a line of a block needs, made through the API."""

    def __init__(self, stack: Stack, token: str) -> None:
        self.stack, self.token = stack, token

    async def submit(self, job_input: dict[str, object], **fields: object) -> str:
        async with self.stack.client(self.token) as client:
            created = await client.post(
                "/api/jobs", json={"type": "demo", "input": job_input, **fields}
            )
            assert created.status_code in (201, 202), created.text
            job_id: str = created.json()["id"]
            return job_id

    async def in_status(self, status: str, job_input: dict[str, object], **fields: object) -> str:
        job_id = await self.submit(job_input, **fields)
        async with self.stack.client(self.token) as client:

            async def reached() -> bool:
                job = (await client.get(f"/api/jobs/{job_id}")).json()
                return bool(job["status"] == status)

            await eventually(reached, timeout_s=60, what=f"job {job_id} {status}")
        return job_id

    async def for_line(self, line: str) -> str:
        """A job the command on ``line`` can act on."""
        verb = line.split()[1]
        if verb == "answer":
            return await self.in_status("waiting", {"ask": True, "duration": 0.3})
        if verb == "cancel":
            return await self.submit({}, delay_seconds=600)
        if verb == "resume":
            job_id = await self.submit({}, delay_seconds=600)
            async with self.stack.client(self.token) as client:
                assert (await client.post(f"/api/jobs/{job_id}/pause")).status_code == 202
            return job_id
        if verb == "start":
            return await self.submit({"duration": 0.3}, draft=True)
        if verb == "pause":
            return await self.submit({}, delay_seconds=600)
        return await self.submit({"duration": 0.3})  # watch, show


@pytest.fixture(scope="module")
async def owner(stack: Stack) -> str:
    return await stack.owner()


def shell_env(stack: Stack, workdir: Path, token: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        JOBCAST_URL=stack.base_url,
        JOBCAST_TOKEN=token,
        TOKEN=token,
        XDG_CONFIG_HOME=str(workdir / "config"),
        COLUMNS="200",
    )
    env.update(extra)
    return env


def on_stack(code: str, stack: Stack) -> str:
    """The block with the docs' server addresses replaced by the stack's."""
    port = stack.base_url.rsplit(":", 1)[1]
    code = code.replace("http://127.0.0.1:8000", stack.base_url)
    code = code.replace("https://jobs.example.com", stack.base_url)
    code = code.replace("wss://jobs.example.com", stack.ws_base)
    return code.replace(f"localhost:{DOC_PORT}", f"127.0.0.1:{port}")


def run_bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(["bash", "-euo", "pipefail", "-c", script], env, cwd)


def run(
    command: list[str], env: dict[str, str], cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=180, check=False
    )


async def run_sh(
    snippet: Snippet, stack: Stack, workdir: Path, token: str, app_key: tuple[str, str, str]
) -> None:
    code = on_stack(snippet.code, stack)
    env = shell_env(stack, workdir, token, JOBCAST_KEY=app_key[2])
    if "3f0c…" not in code:
        done = run_bash(code, env, workdir)
        assert done.returncode == 0, f"{snippet.where}:\n{done.stdout}\n{done.stderr}"
        assert '{"error"' not in done.stdout, f"{snippet.where} got an error:\n{done.stdout}"
        return
    # each line is an example of its own: run it on a job in the state it needs
    jobs = Jobs(stack, token)
    for line in code.splitlines():
        command = line.split("  #", 1)[0].strip()
        if not command:
            continue
        if "3f0c…" in command:
            command = command.replace("3f0c…", await jobs.for_line(command))
        done = run_bash(command, env, workdir)
        assert done.returncode == 0, f"{snippet.where}: {command}\n{done.stdout}\n{done.stderr}"


PRELUDE = """\
import asyncio, contextlib, os
from jobcast.client import AsyncClient, Client
url, token, job_id = os.environ["URL"], os.environ["TOKEN"], os.environ["JOB_ID"]
JOBCAST_KEY_ID, JOBCAST_SIGNING_SECRET = os.environ["KEY_ID"], os.environ["SIGNING_SECRET"]
"""


def as_script(code: str) -> str:
    """A block that awaits at its top level runs inside ``asyncio.run``."""
    if not re.search(r"^(await |async (with|for) )", code, flags=re.M):
        return PRELUDE + code
    body = "".join(f"    {line}\n" for line in code.splitlines())
    return f"{PRELUDE}async def snippet():\n{body}\nasyncio.run(snippet())\n"


@pytest.fixture(scope="module")
async def app_key(stack: Stack) -> tuple[str, str, str]:
    """An app key's id, signing secret and bearer key."""
    async with Store.open(stack.database_url, max_size=1) as store:
        key = await store.create_app_key("docs")
    return key.key.id, key.signing_secret, key.bearer


async def run_python(
    snippet: Snippet, stack: Stack, workdir: Path, token: str, app_key: tuple[str, str, str]
) -> None:
    jobs = Jobs(stack, token)
    job_id = await (
        jobs.in_status("waiting", {"ask": True, "duration": 0.3})
        if '"waiting"' in snippet.code
        else jobs.submit({"duration": 0.3})
    )
    code = on_stack(snippet.code, stack).replace('token="…"', "token=token")
    env = shell_env(
        stack,
        workdir,
        token,
        URL=stack.base_url,
        JOB_ID=job_id,
        KEY_ID=app_key[0],
        SIGNING_SECRET=app_key[1],
        PYTHONPATH=str(ROOT),
    )
    done = forks.run(None, [], code=as_script(code), env=env, cwd=workdir, timeout=180)
    assert done.returncode == 0, f"{snippet.where}:\n{done.stdout}\n{done.stderr}"


NODE_PRELUDE = """\
const jobId = process.env.JOB_ID, token = process.env.BROWSER_TOKEN;
"""
NODE_EPILOGUE = """
let heard = 0;
ws.addEventListener("message", () => { heard += 1; });
process.on("exit", () => { if (!heard) { console.error("nothing heard"); process.exitCode = 1; } });
"""


async def run_js(snippet: Snippet, stack: Stack, app_key: tuple[str, str, str]) -> None:
    """A block that needs no page (a backend's, a bare websocket): in node."""
    async with stack.client(app_key[2]) as client:
        # a browser token for that job: the app key's own jobs only, so the key submits it
        created = await client.post("/api/jobs", json={"type": "noop", "input": {}})
        job_id = created.json()["id"]
        minted = await client.post(
            "/api/tokens", json={"jobs": [job_id], "can": ["read"], "expires_in": 600}
        )
        assert minted.status_code == 201, minted.text
    script = NODE_PRELUDE + on_stack(snippet.code, stack) + NODE_EPILOGUE
    env = {**os.environ, "JOB_ID": job_id, "BROWSER_TOKEN": minted.json()["token"]}
    done = run(["node", "--experimental-websocket", "-e", script], env)
    assert done.returncode == 0, f"{snippet.where}:\n{done.stdout}\n{done.stderr}"


def check_json(snippet: Snippet) -> None:
    value = json.loads(snippet.code)
    if isinstance(value, dict) and {"type", "input"} <= value.keys():
        SubmitRequest.model_validate(value)  # a submit's body, as the API reads it


def check_marker(snippet: Snippet) -> None:
    """The marker's claim holds."""
    marker = snippet.marker or ""
    kind, _, rest = marker.partition(" ")
    if marker.startswith("lines of "):
        path = ROOT / marker.removeprefix("lines of ")
        have = {line.strip() for line in path.read_text().splitlines()}
        missing = [  # a line with "..." stands for lines left out
            line
            for line in snippet.code.splitlines()
            if line.strip() and "..." not in line and line.strip() not in have
        ]
        assert missing == [], f"{snippet.where}: not in {path.name}: {missing}"
    elif marker.startswith("run by "):
        path = ROOT / marker.removeprefix("run by ")
        first = " ".join(snippet.code.split()[:2])
        text = path.read_text()
        assert snippet.page.name in text or first in text, (
            f"{snippet.where}: {path.name} names neither {snippet.page.name} nor {first!r}"
        )
    elif marker.startswith("run after "):
        path = ROOT / marker.removeprefix("run after ")
        namespace: dict[str, object] = {"__name__": "snippet"}
        exec(compile(path.read_text(), str(path), "exec"), namespace)
        exec(compile(snippet.code, snippet.where, "exec"), namespace)
    elif marker == "settings":
        pairs = dict(
            line.split("#", 1)[0].strip().split("=", 1)
            for line in snippet.code.splitlines()
            if line.strip()
        )
        load_settings(environ=pairs)  # a bad key or value is a ConfigError naming it
    elif marker == "output":
        if snippet.lang == "json":
            json.loads(snippet.code)
        else:
            assert snippet.lang == "", f"{snippet.where}: output of what language?"
    elif kind == "needs":
        check_needs(snippet, rest)
    elif marker == "browser API":
        check_browser_api(snippet)
    else:
        pytest.fail(f"{snippet.where}: unknown marker {marker!r}")


def check_needs(snippet: Snippet, what: str) -> None:
    if what == "systemd":
        present = Path("/run/systemd/system").is_dir()  # systemd is the init
    elif what == "the internet":
        try:
            socket.create_connection(("example.com", 443), timeout=3).close()
            present = True
        except OSError:
            present = False
    elif what.startswith("the npm package "):
        package = what.removeprefix("the npm package ")
        node = shutil.which("node")
        present = node is not None and (
            subprocess.run([node, "-e", f"require('{package}')"], capture_output=True).returncode
            == 0
        )
    else:
        present = shutil.which(what) is not None
    assert not present, f"{snippet.where}: {what} is here now: run the block instead"
    for named in re.findall(r"(?:deploy/[\w./*-]+|Containerfile)", snippet.code):
        assert list(ROOT.glob(named)), f"{snippet.where}: names {named}, which is not there"


def check_browser_api(snippet: Snippet) -> None:
    """A page's block: what it calls, the attributes and the custom properties it sets
    are ones jobcast.js and the element's stylesheet have."""
    script = (ROOT / "static" / "jobcast.js").read_text()
    styles = script + (ROOT / "static" / "job-progress.css").read_text()
    called = set(re.findall(r"\b(?:jobs|jobcast|watcher)\.(\w+)\(", snippet.code))
    for name in called:
        assert re.search(rf"\b{name}\s*[:(]|function {name}\b", script), (
            f"{snippet.where}: jobcast.js has no {name}"
        )
    for attribute in re.findall(r"<job-progress([^>]*)>", snippet.code):
        for name in set(re.findall(r"([\w-]+)=", attribute)) - {"id", "class", "style"}:
            assert f'"{name}"' in script, f"{snippet.where}: the element has no {name} attribute"
    for prop in re.findall(r"(--job-progress-[\w-]+)", snippet.code):
        assert prop in styles, f"{snippet.where}: {prop} is not used by the element"
    for src in re.findall(
        r'src="(?:/jobcast|https://jobs\.example\.com)(/static/[\w./-]+)"', snippet.code
    ):
        assert (ROOT / src.lstrip("/")).is_file(), f"{snippet.where}: no {src}"


def test_every_block_is_run_or_says_why_not() -> None:
    unaccounted = [
        s.where
        for s in SNIPPETS
        if s.marker is None and s.lang not in ("sh", "python", "json", "js")
    ]
    assert unaccounted == [], "blocks neither run nor marked (tests/doc_snippets.py)"


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.marker is not None], ids=ids)
def test_a_marked_block_is_what_its_marker_says(snippet: Snippet) -> None:
    check_marker(snippet)


@pytest.mark.parametrize(
    "snippet", [s for s in SNIPPETS if s.marker is None and s.lang == "json"], ids=ids
)
def test_a_json_block_parses(snippet: Snippet) -> None:
    check_json(snippet)


@pytest.mark.parametrize(
    "snippet",
    [s for s in SNIPPETS if s.marker is None and s.lang in ("sh", "python", "js")],
    ids=ids,
)
async def test_a_block_runs_against_a_real_stack(
    snippet: Snippet, stack: Stack, workdir: Path, owner: str, app_key: tuple[str, str, str]
) -> None:
    if snippet.lang == "sh":
        await run_sh(snippet, stack, workdir, owner, app_key)
    elif snippet.lang == "js":
        await run_js(snippet, stack, app_key)
    else:
        await run_python(snippet, stack, workdir, owner, app_key)
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        assert (await client.get("/readyz")).status_code == 200
