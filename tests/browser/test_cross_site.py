"""An attacker's page on another origin of the same site, in Chromium: it cannot act
with the visitor's session cookie.

The visitor has a session with jobcast (its page made one) and a job waiting. The
visitor then opens a page served from another port of the same host, which is the
same site to the browser, so the ``SameSite=Lax`` cookie goes along. The page does
what such a page can: no-cors fetches with a text/plain body (submit, cancel, retry)
and a plain form POST to ``/api/sessions``. Nothing of it may take effect.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.async_api import Browser

from jobcast.endpoints import free_port
from tests.browser.pages import open_home
from tests.support import Stack

pytestmark = pytest.mark.browser

ATTACK = """<!doctype html>
<html><head><title>attacker</title></head><body>
<form id="replace" method="POST" action="{target}/api/sessions" enctype="text/plain">
  <input name="x" value="y">
</form>
<script>
(async () => {{
  const post = (body) => ({{
    method: "POST", mode: "no-cors", credentials: "include",
    headers: {{"Content-Type": "text/plain"}}, body,
  }});
  const sent = [];
  for (const [path, body] of [
    ["/api/jobs", '{{"type": "noop", "input": {{}}}}'],
    ["/api/jobs/{job_id}/cancel", ""],
    ["/api/jobs/{job_id}/retry", ""],
  ]) {{
    try {{ await fetch("{target}" + path, post(body)); sent.push(path); }}
    catch (err) {{ sent.push("failed " + path); }}
  }}
  window.__sent = sent;
  document.getElementById("replace").submit();
}})();
</script>
</body></html>
"""


class Attacker:
    """A tiny web server on another port, serving one page."""

    def __init__(self) -> None:
        self.html = b""
        attacker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(attacker.html)))
                self.end_headers()
                self.wfile.write(attacker.html)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    served = Attacker()
    served.thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


async def test_a_page_of_another_origin_cannot_act_with_the_cookie(
    stack: Stack, browser: Browser, attacker: Attacker
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await open_home(page, stack.base_url)  # the page makes the visitor's session
    (cookie,) = [c for c in await context.cookies(stack.base_url) if c["name"] == "jobcast_session"]
    token = cookie["value"]
    async with stack.client(token) as client:
        waiting = await client.post(
            "/api/jobs", json={"type": "noop", "input": {}, "delay_seconds": 600}
        )
        job_id = waiting.json()["id"]

        attacker.html = ATTACK.format(target=stack.base_url, job_id=job_id).encode()
        await page.goto(attacker.url)
        # the form's POST navigates to jobcast once the fetches are done
        await page.wait_for_url(f"{stack.base_url}/api/sessions", timeout=15_000)
        jobs = (await client.get("/api/jobs")).json()["jobs"]
    (after,) = [c for c in await context.cookies(stack.base_url) if c["name"] == "jobcast_session"]
    await context.close()

    mine = next(j for j in jobs if j["id"] == job_id)
    outcome = {
        "jobs the attacker made": len(jobs) - 1,
        "the waiting job": mine["status"],  # not cancelled
        "the session kept": after["value"] == token,
    }
    assert outcome == {
        "jobs the attacker made": 0,
        "the waiting job": "pending",
        "the session kept": True,
    }
