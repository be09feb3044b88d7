"""The test processes' fork server preloads libraries that exist and start no thread."""

from __future__ import annotations

import subprocess
import sys

from jobcast.settings import ROOT
from tests.forks import PRELOAD

CHECK = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
status = open("/proc/self/status").read()
print(status.split("Threads:")[1].split()[0])
"""


def test_every_preloaded_module_imports_and_none_starts_a_thread() -> None:
    """A name that does not import is skipped by multiprocessing without a word (one did:
    a websockets implementation not installed), and a library that starts threads as it is
    imported (polars) cannot be forked safely: its forked copies have none of them."""
    done = subprocess.run(
        [sys.executable, "-c", CHECK, *PRELOAD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1", f"threads after the imports: {done.stdout.strip()}"
    assert not any(name.split(".")[0] in ("jobcast", "server", "workers") for name in PRELOAD)
