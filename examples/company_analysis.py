"""A paid, multi-step company analysis, as an app would write it on jobcast.

Five weighted steps, each a call to an upstream data API that costs money (``profile``,
``financials``, ``news``, ``competitors``) and a summary. Each paid step is a checkpoint
(``job.run_step``): when the upstream fails one, the job's retry starts at that step with
the earlier steps' stored results, and pays for none of them again. The upstream's
answers are classified: 429 and 5xx and a dropped connection are transient (retried with
backoff; the message quotes the upstream's ``Retry-After``), any other 4xx permanent
(failed at once). Each step reports its progress with a message, and the job can be
cancelled from its page while it runs.

    python examples/company_analysis.py 8090     # a fake upstream on 127.0.0.1:8090
    PYTHONPATH=examples JOBCAST_JOB_MODULES=company_analysis make run

and submit ``{"company": "Acme", "upstream_url": "http://127.0.0.1:8090"}``. The fake
upstream (``FakeUpstream``, also what the tests start) answers ``competitors`` with 429
and ``Retry-After: 1`` the first time, then 200, and counts every call it gets.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from jobcast.errors import PermanentError, TransientError
from jobcast.registry import JobContext, JobType, Step

PAID_STEPS = ("profile", "financials", "news", "competitors")


class AnalysisInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    company: str = Field(min_length=1, max_length=200, description="The company to analyze.")
    upstream_url: str = Field(
        "http://127.0.0.1:8090", max_length=500, description="The data API's base URL."
    )
    step_s: float = Field(0.3, ge=0, le=60, description="Seconds each step works after its call.")


async def fetch(upstream_url: str, what: str, company: str) -> dict[str, Any]:
    """One paid call: GET {upstream}/v1/{what}?company=…, its errors sorted into classes."""
    url = f"{upstream_url.rstrip('/')}/v1/{what}"
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(url, params={"company": company})
    except httpx.TransportError as exc:
        raise TransientError(f"the {what} API did not answer: {type(exc).__name__}") from None
    if response.status_code == 429:
        wait = response.headers.get("Retry-After", "?")
        raise TransientError(f"the {what} API is rate limited (Retry-After: {wait} s)")
    if response.status_code >= 500:
        raise TransientError(f"the {what} API failed with HTTP {response.status_code}")
    if response.status_code >= 400:
        raise PermanentError(f"the {what} API refused the request: HTTP {response.status_code}")
    data: dict[str, Any] = response.json()
    return data


async def analyze(job: JobContext, params: AnalysisInput) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for what in PAID_STEPS:

        async def paid(what: str = what) -> dict[str, Any]:
            await job.progress(10, f"Calling the {what} API")
            data = await fetch(params.upstream_url, what, params.company)
            ticks = 4
            for tick in range(1, ticks + 1):
                await asyncio.sleep(params.step_s / ticks)
                await job.progress(10 + 90 * tick / ticks, f"Reading {what}: {tick} of {ticks}")
            return data

        found[what] = await job.run_step(what, paid)
    async with job.step("summary"):
        await job.progress(50, "Writing the summary")
        rivals = found["competitors"].get("names", [])
        return {
            "summary": (
                f"{params.company}: {found['financials'].get('revenue', '?')} revenue, "
                f"{len(found['news'].get('headlines', []))} headlines, {len(rivals)} competitors"
            ),
            **found,
        }


JOB_TYPES = (
    JobType(
        name="company_analysis",
        title="Company analysis",
        input_model=AnalysisInput,
        run=analyze,
        steps=(
            Step("profile", "Company profile", weight=1),
            Step("financials", "Financials", weight=3),
            Step("news", "News", weight=2),
            Step("competitors", "Competitors", weight=3),
            Step("summary", "Summary", weight=1),
        ),
        max_attempts=3,
        timeout_s=300,
    ),
)


# ------------------------------------------------------------ the fake upstream

ANSWERS: dict[str, dict[str, Any]] = {
    "profile": {"name": "Acme", "founded": 1949, "employees": 1200},
    "financials": {"revenue": "$310M", "growth": 0.12},
    "news": {"headlines": ["Acme opens a plant", "Acme hires a CFO", "Acme wins a contract"]},
    "competitors": {"names": ["Globex", "Initech", "Umbrella"]},
}


class FakeUpstream:
    """A local stand-in for the paid API: answers ``rate_limit_first`` with 429 and
    ``Retry-After: 1`` the first time it is asked, 200 after; ``calls`` counts every call."""

    def __init__(self, port: int = 0, rate_limit_first: str | None = "competitors") -> None:
        self.calls: Counter[str] = Counter()
        self.rate_limit_first = rate_limit_first
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                what = parts.path.removeprefix("/v1/")
                upstream.calls[what] += 1
                if what not in ANSWERS or not parse_qs(parts.query).get("company"):
                    self._answer(404, {"error": "unknown"})
                elif what == upstream.rate_limit_first and upstream.calls[what] == 1:
                    self._answer(429, {"error": "slow down"}, {"Retry-After": "1"})
                else:
                    self._answer(200, ANSWERS[what])

            def _answer(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


if __name__ == "__main__":
    with FakeUpstream(int(sys.argv[1]) if len(sys.argv) > 1 else 8090) as fake:
        print(f"fake upstream on {fake.url}; Ctrl-C stops it")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
