"""The worker process as an operator starts it: a bad setting is one clear line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jobcast.settings import ROOT


@pytest.mark.parametrize("args", [[], ["--check"]], ids=["run", "check"])
def test_a_bad_setting_stops_the_worker_with_one_line_naming_it(args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
    env["JOBCAST_HEARTBEAT_S"] = "abc"
    done = subprocess.run(
        [sys.executable, "-m", "workers", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("jobcast worker: JOBCAST_HEARTBEAT_S:")
    assert "abc" in lines[0] and "Traceback" not in done.stderr
    assert done.stdout == ""
