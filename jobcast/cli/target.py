"""The server the client commands talk to, and the owner token they prove themselves with."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer

from jobcast.cli.console import CliError, Exit, note
from jobcast.client import ApiError, Client, NotFound, Unauthorized

URL_ENV = "JOBCAST_URL"
TOKEN_ENV = "JOBCAST_TOKEN"
PUBLIC_URL_ENV = "JOBCAST_PUBLIC_URL"
ADMIN_TOKEN_ENV = "JOBCAST_ADMIN_TOKEN"
# the client's own keys: the service's settings do not know them
CLIENT_ENV_KEYS = (URL_ENV, TOKEN_ENV, PUBLIC_URL_ENV)
DEFAULT_URL = "http://127.0.0.1:8000"
APP_KEY_PREFIX = "jck_"  # an app key, as `jobcast keys create` prints it
LINK_TOKEN_TTL_S = 3600  # how long the browser token of a printed link opens the job


@dataclass(frozen=True)
class TokenFile:
    """Owner tokens this machine created, one per server URL, readable by this user only."""

    path: Path

    @classmethod
    def default(cls) -> TokenFile:
        config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return cls(Path(config_home) / "jobcast" / "tokens.json")

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {self.path}: {exc}", Exit.USAGE) from exc
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def get(self, url: str) -> str | None:
        return self._load().get(url)

    def put(self, url: str, token: str | None) -> None:
        tokens = self._load()
        if token is None:
            tokens.pop(url, None)
        else:
            tokens[url] = token
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(tokens, out, indent=2)
        os.replace(partial, self.path)


@dataclass(frozen=True)
class Target:
    """The server the client commands talk to, and how they prove who they are."""

    url: str
    token: str | None
    tokens: TokenFile
    public_url: str | None = None

    def page_of(self, job_id: str) -> str:
        """The job's page in a browser: under the public URL, else under the server's."""
        return f"{self.public_url or self.url}/jobs/{quote(job_id, safe='')}"

    def link_to(self, client: Client, job_id: str) -> str:
        """The job's page; acting with an app key, with a read-only browser token for this
        job alone in its fragment (``#token=``), so that any browser opens it for an hour."""
        page = self.page_of(job_id)
        if not (client.token or "").startswith(APP_KEY_PREFIX):
            return page
        try:
            token = client.browser_token([job_id], ["read"], LINK_TOKEN_TTL_S)
        except ApiError as exc:
            note(f"the link has no browser token: {exc}")
            return page
        return f"{page}#token={token}"


def options(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option(envvar=URL_ENV, help="The server the client commands talk to.")
    ] = DEFAULT_URL,
    token: Annotated[
        str | None,
        typer.Option(
            envvar=TOKEN_ENV,
            show_default=False,
            help="Owner token. Without one, a session is created once per URL and its token "
            "kept in ~/.config/jobcast/tokens.json.",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            envvar=PUBLIC_URL_ENV,
            show_default=False,
            help="Where browsers reach the server, for the job links that submit and show "
            "print (default: --url).",
        ),
    ] = None,
) -> None:
    """The options before the command: they make the Target every command finds in ``ctx.obj``."""
    ctx.obj = Target(
        url=url.rstrip("/"),
        token=token or None,
        tokens=TokenFile.default(),
        public_url=public_url.rstrip("/") if public_url else None,
    )


@contextmanager
def owner_client(ctx: typer.Context, job_id: str | None = None) -> Iterator[Client]:
    """A client holding an owner token: the given one, the saved one, or a new session's.

    With ``job_id``, a 404 names the job the command was about.
    """
    target: Target = ctx.obj
    token = target.token or target.tokens.get(target.url)
    saved = target.token is None and token is not None
    with Client(target.url, token) as client:
        if token is None:
            target.tokens.put(target.url, client.create_session())
            note(f"new owner session for {target.url}; its token is kept in {target.tokens.path}")
        try:
            yield client
        except NotFound as exc:
            if job_id is None:
                raise
            raise CliError(f"no job {job_id} for this token", Exit.REFUSED) from exc
        except Unauthorized as exc:
            if not saved:
                raise
            target.tokens.put(target.url, None)
            raise CliError(
                f"{target.url} no longer knows the saved token ({exc}); it is forgotten, "
                "so the next command starts a new session",
                Exit.REFUSED,
            ) from exc
