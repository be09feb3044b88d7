"""/metrics: counters from the web and worker processes together, and install-wide gauges."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tests.support import Stack, declared_steps, eventually, progress_by_step, submit, watch


async def scrape(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counters_move_as_jobs_run(stack: Stack) -> None:
    before = await scrape(stack)
    token = await stack.owner()
    async with stack.client(token) as client:
        ok = await submit(client, "demo", duration=0.2)
        bad = await submit(client, "demo", duration=0.1, fail_step="report")
        watched = [await watch(stack, token, ok), await watch(stack, token, bad)]
        steps = await declared_steps(client, "demo")

    async def settled() -> dict | None:  # type: ignore[type-arg]
        now = await scrape(stack)
        done = value(now, "jobcast_jobs_completed_total", type="demo") - value(
            before, "jobcast_jobs_completed_total", type="demo"
        )
        return now if done == 1 else None

    after = await eventually(settled, what="the worker's counters")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("jobcast_jobs_submitted_total", type="demo") == 2  # from the web process
    assert delta("jobcast_jobs_completed_total", type="demo") == 1  # from the worker
    assert delta("jobcast_jobs_failed_total", type="demo") == 1
    assert delta("jobcast_job_duration_seconds_count", type="demo") == 1
    assert delta("jobcast_step_duration_seconds_count", type="demo", step="fetch") == 2
    assert delta("jobcast_step_duration_seconds_count", type="demo", step="report") == 1
    # every progress event of the two jobs was published once: every declared step of the
    # one that completed, and those before "report" of the one that failed there
    progress = [progress_by_step(w.events) for w in watched]
    assert list(progress[0]) == steps and list(progress[1]) == steps[: steps.index("report")]
    published = sum(sum(counts.values()) for counts in progress)
    assert delta("jobcast_events_published_total", kind="progress") == published
    assert delta("jobcast_event_fanout_seconds_count") > 0
    assert ("jobcast_queue_depth", ()) in after and ("jobcast_stuck_jobs", ()) in after


async def test_open_websockets_gauge_follows_sockets(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=3)
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(f"{stack.ws_base}/ws/jobs/{job_id}", additional_headers=headers) as ws:
        await ws.recv()
        during = await scrape(stack)

    async def closed() -> bool:
        return value(await scrape(stack), "jobcast_open_websockets", kind="job") == 0

    assert value(during, "jobcast_open_websockets", kind="job") == 1
    await eventually(closed, what="the gauge going back to 0")
    running = value(during, "jobcast_running_jobs", type="demo") + value(
        during, "jobcast_pending_jobs", type="demo"
    )
    assert running >= 1


def test_the_sample_dashboard_uses_only_metrics_that_exist() -> None:
    import json
    import re

    from jobcast import metrics
    from jobcast.settings import ROOT

    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"jobcast_[a-z_]+", target["expr"])
    }
    known = {m._name for m in vars(metrics).values() if hasattr(m, "_name")}
    known |= {f"jobcast_{name}" for name in metrics._INSTALL_DOCS}
    suffixes = ("_bucket", "_total")
    unknown = {
        u
        for u in used
        if u not in known
        and not any(
            u.endswith(s) and u[: -len(s)] in known | {k.removesuffix("_total") for k in known}
            for s in suffixes
        )
    }
    assert unknown == set()
