"""A daemon the topology tests run in front of the service (nginx, PgBouncer): its own
directory and a port the OS gave, started and waited for until it accepts, stopped with
its directory removed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from jobcast.endpoints import free_port

START_S = 30.0  # a loaded machine starts a daemon slowly; a healthy one in well under 1 s


class Daemon:
    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"jobcast-{name}-"))
        self.dir.chmod(0o755)  # read by the unprivileged user a daemon runs as under root
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self, name: str) -> str:
        path = self.dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def launch(self, command: list[str], output: str, errors: str) -> None:
        """Run ``command`` (its output to the file ``output``) until it accepts on the port;
        AssertionError with the end of the log ``errors`` if it exits or never does."""
        with open(self.dir / output, "ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_S
        while not _accepts(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                said = self.log(errors)[-2000:]
                self.stop()
                raise AssertionError(f"{self.name} did not start:\n{said}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
