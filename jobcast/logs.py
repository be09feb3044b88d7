"""Logging set up once per process, the same way in the web process and the worker.

Every line about a job carries its id, type and attempt, and every line written
while serving a request carries the request's id (from ``X-Request-ID``, or a
new one): both come from context variables that the runner and the request
middleware set, so call sites need not repeat them. ``JOBCAST_LOG_FORMAT=json``
writes one JSON object per line. Tokens are never logged: jobcast's own lines
never name them, and every line, uvicorn's included (its websocket line writes the
whole query), has the value of any credential-like query parameter
(``?token=``, ``key=``, ...) replaced by ``***`` before it is written.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson

from jobcast.settings import Settings

JOB: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("job", default=None)
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# a credential in a URL's query: the name, then its value up to the next separator
_CREDENTIAL_IN_URL = re.compile(
    r"([?&;](?:token|access_token|api_key|apikey|key|secret|password|auth|signature|sig)=)"
    r"[^&;\s\"'#]+",
    re.IGNORECASE,
)

_TEXT = "%(asctime)s %(levelname)-7s {role} %(name)s: %(message)s%(context)s"


def name_job(
    job_id: object, job_type: str, attempt: int = 0
) -> contextvars.Token[dict[str, Any] | None]:
    """From here to the end of the current task, every log line names this job: in a
    server process, the rest of one HTTP request, its access line included."""
    return JOB.set({"job_id": str(job_id), "job_type": job_type, "attempt": attempt})


@contextmanager
def job_context(job_id: object, job_type: str, attempt: int) -> Iterator[None]:
    """Within the block, every log line names this job, its type and attempt."""
    token = name_job(job_id, job_type, attempt)
    try:
        yield
    finally:
        JOB.reset(token)


def redact(message: str) -> str:
    """The message with the value of every credential in a URL query replaced by ***."""
    return _CREDENTIAL_IN_URL.sub(r"\1***", message) if "=" in message else message


class _Context(logging.Filter):
    """Copies the job and request context onto each record, and redacts credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "=" in str(record.msg) or record.args:
            message = record.getMessage()
            redacted = redact(message)
            if redacted != message:
                record.msg, record.args = redacted, ()
        job = JOB.get()
        request_id = REQUEST_ID.get()
        record.job = job
        record.request_id = request_id
        parts = []
        if job is not None:
            parts.append(f"job={job['job_id']} type={job['job_type']} attempt={job['attempt']}")
        if request_id is not None:
            parts.append(f"request={request_id}")
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self._role = role

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "process": self._role,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = getattr(record, "job", None)
        if job:
            line.update(job)
        request_id = getattr(record, "request_id", None)
        if request_id:
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def setup_logging(settings: Settings, role: str) -> None:
    """Log to stderr, each line tagged with the process's role (web, worker, dev)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_jobcast", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(role))
    else:
        handler.setFormatter(logging.Formatter(_TEXT.format(role=role)))
    handler.addFilter(_Context())
    handler._jobcast = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # uvicorn's lines go through this handler too (the web process starts uvicorn with
    # log_config=None), but for its access lines: jobcast writes one line per request
    # itself (server/access.py), or none when the access log is off. uvicorn writes its
    # access line while its logger has a handler anywhere up the tree, so it gets none.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = name != "uvicorn.access"
    # arq's line per job start and end would drown ours, which carry the same ids
    logging.getLogger("arq").setLevel(logging.WARNING)
