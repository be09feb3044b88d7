"""A real nginx running the configuration docs/deploy.md gives, on a free loopback port.

The ``upstream`` and ``server`` blocks are read from the page's ```nginx block; the
test only points the upstream at its own web processes and ``listen`` at its port, and
wraps them in a main configuration whose pid, logs and temp dirs are in a directory of
its own (``-p``), so nothing needs root. Debian's ``nginx`` (or ``nginx-light``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from jobcast.settings import ROOT
from tests.daemon import Daemon

_BINARY = shutil.which("nginx") or "/usr/sbin/nginx"
_TEMPS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_blocks(page: str) -> list[str]:
    """The ```nginx blocks of a docs page."""
    text = (ROOT / "docs" / page).read_text()
    return re.findall(r"```nginx\n(.*?)```", text, flags=re.S)


def location_lines(block: str) -> list[str]:
    """The directives of a block's ``location /jobcast/`` (comments and proxy_pass aside)."""
    body = block.split("location /jobcast/ {", 1)[1].split("}", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in body.splitlines()]
    return [line for line in lines if line and not line.startswith("proxy_pass")]


class Nginx(Daemon):
    """docs/deploy.md's nginx in front of ``web_ports``."""

    def __init__(self, web_ports: list[int]) -> None:
        if not Path(_BINARY).exists():
            pytest.skip("nginx is not installed: `make test` installs it as root (apt-get)")
        super().__init__("nginx")
        (self.dir / "html").mkdir()
        for name in _TEMPS:
            (self.dir / name).mkdir(mode=0o777)
            (self.dir / name).chmod(0o777)  # nginx's workers run as nobody under root
        block = next(b for b in nginx_blocks("deploy.md") if "upstream jobcast" in b)
        # the page's own server options (what follows the address), on the test's ports
        options = re.search(r"server 127\.0\.0\.1:\d+( [^;]*)?;", block)
        assert options is not None, "deploy.md's upstream names no server"
        servers = "".join(f"    server 127.0.0.1:{p}{options.group(1) or ''};\n" for p in web_ports)
        block = re.sub(
            r"(upstream jobcast \{\n)(.*?)(\})", rf"\g<1>{servers}\g<3>", block, flags=re.S
        )
        block = block.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        # the test's own page, on the same origin (the app beside jobcast)
        block = block.replace(
            "    location /jobcast/ {",
            f"    location = /app.html {{ root {self.dir / 'html'}; }}\n    location /jobcast/ {{",
        )
        temps = "".join(f"    {n}_temp_path {self.dir / n};\n" for n in _TEMPS)
        (self.dir / "nginx.conf").write_text(
            f"pid {self.dir / 'nginx.pid'};\n"
            f"error_log {self.dir / 'error.log'} info;\n"
            "daemon off;\nworker_processes 1;\n"
            # the rolling restart's 500 watched sockets take two connections each
            "events { worker_connections 4096; }\n"
            "http {\n"
            f"    access_log {self.dir / 'access.log'};\n{temps}{block}\n}}\n"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, name: str, html: str) -> None:
        (self.dir / "html" / name).write_text(html)

    def start(self) -> None:
        command = [_BINARY, "-p", str(self.dir), "-e", str(self.dir / "error.log")]
        command += ["-c", str(self.dir / "nginx.conf")]
        self.launch(command, "stderr.log", "error.log")

    def log(self, name: str = "access.log") -> str:
        return super().log(name)
