"""A person in the loop, pause and drafts, and streamed output, from the Python client and the
``jobcast`` command, against real web and worker processes (the demo's ask, stream, items)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from jobcast.client import AsyncClient, BadRequest, Client, Conflict, Event
from tests.integration.test_cli import jobcast, one_error_line
from tests.support import Stack, eventually

REPORT_TEXT = (
    "The demo fetched its data, analyzed it and found nothing out of the ordinary. "
    "Every step ran in turn, each reported its progress, and this report was written "
    "word by word while you watched."
)


@pytest.fixture(scope="module")
def config_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config")


async def status_of(client: AsyncClient, job_id: str, wanted: str, timeout_s: float = 20) -> None:
    async def reached() -> bool:
        return (await client.get(job_id)).status == wanted

    await eventually(reached, timeout_s=timeout_s, what=f"job {job_id} {wanted}")


async def test_the_client_answers_a_question_and_the_watch_sees_every_new_event(
    stack: Stack,
) -> None:
    async with AsyncClient(stack.base_url) as client:
        await client.create_session()
        job_id = (await client.submit("demo", {"duration": 0.5, "ask": True, "stream": True})).id
        events: list[Event] = []

        async def follow() -> None:
            async for event in client.watch(job_id):
                events.append(event)

        watching = asyncio.create_task(follow())
        await status_of(client, job_id, "waiting")
        job = await client.get(job_id)
        request = job.input_request
        assert request is not None
        assert request["step"] == "analyze"
        assert request["schema"]["properties"]["approve"]["type"] == "boolean"

        # an answer that does not fit: a 422 naming the field; nothing is stored
        with pytest.raises(BadRequest) as refused:
            await client.answer(job_id, {"approve": "yes"})
        assert refused.value.status == 422
        fields = [d["field"] for d in refused.value.details]
        assert any(f.endswith("approve") for f in fields), fields

        accepted = await client.answer(job_id, {"approve": True, "note": "fine"}, step="analyze")
        assert accepted["step"] == "analyze"
        with pytest.raises(Conflict):
            await client.answer(job_id, {"approve": True})
        await asyncio.wait_for(watching, 30)

    asked = [e for e in events if e.kind == "input_required"]
    assert len(asked) == 1 and asked[0].prompt == "Approve the analysis?"
    assert asked[0].question_schema is not None
    answered = [e for e in events if e.kind == "input"]
    assert len(answered) == 1 and answered[0].answer == {"approve": True, "note": "fine"}
    # the stream's pieces, in order and once each, make the whole text
    pieces = [e for e in events if e.kind == "stream"]
    assert pieces and all(e.name == "report" for e in pieces)
    offsets = [e.offset for e in pieces]
    assert offsets == sorted(offsets) and offsets[0] == 0
    assert "".join(e.text or "" for e in pieces) == REPORT_TEXT
    assert events[-1].final and events[-1].status == "completed"


def test_the_sync_client_pauses_resumes_and_starts_a_draft(stack: Stack) -> None:
    with Client(stack.base_url) as client:
        client.create_session()
        draft = client.submit("demo", {"duration": 30}, draft=True)
        assert draft.status == "draft"
        job = client.update_draft(draft.id, {"duration": 3})
        assert job.status == "draft" and job.input == {**job.input, "duration": 3}
        client.start(draft.id)
        with pytest.raises(Conflict):
            client.start(draft.id)  # not a draft any more

        running = client.get(draft.id)
        for _ in client.watch(draft.id):
            running = client.get(draft.id)
            if running.status == "running":
                break
        paused = client.pause(draft.id)
        assert paused["status"] in ("running", "paused")
        # the watch sees it stop at a step boundary: a paused status event, then nothing final
        for event in client.watch(draft.id, after=running.seq):
            if event.kind == "status" and event.status == "paused":
                break
        assert client.get(draft.id).status == "paused"
        client.resume(draft.id)
        done = client.wait(draft.id, timeout_s=30)
        assert done.status == "completed"
        with pytest.raises(Conflict):
            client.pause(draft.id)  # finished


async def test_the_command_answers_pauses_resumes_starts_and_prints_a_stream(
    stack: Stack, config_home: Path
) -> None:
    made = jobcast(stack, config_home, "submit", "demo", "-i", '{"duration": 0.5, "ask": true}')
    assert made.returncode == 0, made.stderr
    job_id = made.stdout.strip()
    token = (config_home / "jobcast" / "tokens.json").read_text()
    assert stack.base_url in token
    async with AsyncClient(stack.base_url) as client:
        client.token = json.loads(token)[stack.base_url]
        await status_of(client, job_id, "waiting")

        wrong = jobcast(stack, config_home, "answer", job_id, "approve=maybe")
        assert wrong.returncode == 4
        assert "approve" in one_error_line(wrong)
        bad_json = jobcast(stack, config_home, "answer", job_id, "--json", "{nope")
        assert bad_json.returncode == 2
        ok = jobcast(stack, config_home, "answer", job_id, "approve=true", "note=from the shell")
        assert ok.returncode == 0, ok.stderr
        assert "goes on at step analyze" in ok.stdout
        again = jobcast(stack, config_home, "answer", job_id, "--json", '{"approve": true}')
        assert again.returncode == 4
        await status_of(client, job_id, "completed")

    # a draft, started from the command line, and its stream printed as it arrives
    draft = jobcast(
        stack, config_home, "submit", "demo", "--draft", "-i", '{"duration": 1, "stream": true}'
    )
    assert draft.returncode == 0, draft.stderr
    draft_id = draft.stdout.strip()
    started = jobcast(stack, config_home, "start", draft_id)
    assert started.returncode == 0 and f"started {draft_id}" in started.stdout
    watched = jobcast(stack, config_home, "watch", draft_id)
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.startswith(REPORT_TEXT + "\n"), watched.stdout
    assert '"summary"' in watched.stdout  # the result follows the stream
    quiet = jobcast(stack, config_home, "watch", "--no-stream", draft_id)
    assert REPORT_TEXT not in quiet.stdout

    # pause and resume a running job
    long = jobcast(stack, config_home, "submit", "demo", "-i", '{"duration": 10}')
    long_id = long.stdout.strip()
    paused = jobcast(stack, config_home, "pause", long_id)
    assert paused.returncode == 0 and long_id in paused.stdout
    async with AsyncClient(stack.base_url) as client:
        client.token = json.loads(token)[stack.base_url]
        await status_of(client, long_id, "paused")
        resumed = jobcast(stack, config_home, "resume", long_id)
        assert resumed.returncode == 0 and f"resumed {long_id}" in resumed.stdout
        await status_of(client, long_id, "completed", timeout_s=40)
    refused = jobcast(stack, config_home, "resume", long_id)
    assert refused.returncode == 4
