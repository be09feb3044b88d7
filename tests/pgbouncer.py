"""A real PgBouncer in transaction mode, in front of the suite's Postgres.

Debian's ``pgbouncer`` (1.18: no prepared statements across transactions) on a free
loopback port, its configuration in a directory of its own, trust auth. PgBouncer will
not run as root: as root it is started with ``-u`` as the ``postgres`` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.daemon import Daemon

_BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def pgbouncer_or_skip() -> str:
    if not Path(_BINARY).exists():
        pytest.skip("pgbouncer is not installed: `make test` installs it as root (apt-get)")
    return _BINARY


class PgBouncer(Daemon):
    """One pgbouncer process, pooling every database of ``dsn``'s server."""

    def __init__(self, dsn: str, *, pool_size: int = 20) -> None:
        self.binary = pgbouncer_or_skip()
        super().__init__("pgbouncer")
        parts = urlsplit(dsn)
        self.upstream = parts
        user = parts.username or "postgres"
        (self.dir / "userlist.txt").write_text(f'"{user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={parts.hostname or '127.0.0.1'} port={parts.port or 5432}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.dir / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 1000\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            "server_reset_query =\n"
        )
        for path in self.dir.iterdir():
            path.chmod(0o644)

    def url(self, dsn: str) -> str:
        """``dsn`` (a database on the upstream server) reached through this pgbouncer."""
        parts = urlsplit(dsn)
        netloc = f"{parts.username or 'postgres'}@127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def start(self) -> None:
        command = [self.binary]
        if os.geteuid() == 0:
            command += ["-u", _unprivileged_user()]
        command.append(str(self.dir / "pgbouncer.ini"))
        self.launch(command, "pgbouncer.log", "pgbouncer.log")

    def log(self, name: str = "pgbouncer.log") -> str:
        return super().log(name)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise AssertionError("no unprivileged user to run pgbouncer as")
