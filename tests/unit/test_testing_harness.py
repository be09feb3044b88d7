"""jobcast.testing runs the examples' job code in-process, recording what a watcher would
see: no Postgres, Redis or worker is started here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from jobcast import testing
from jobcast.errors import InvalidInput
from jobcast.registry import JobContext, JobType, Step

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def job_type(module: ModuleType, name: str) -> JobType:
    return next(t for t in module.JOB_TYPES if t.name == name)


def test_word_count_runs_with_its_steps_progress_and_result() -> None:
    wordcount = example("wordcount")
    text = "the cat and the hat and the bat " * 5
    run = testing.run_sync(job_type(wordcount, "word_count"), {"text": text, "top": 2})
    assert run.status == "completed", run.error
    assert run.result["words"] == len(text.split())
    assert run.result["top"][0] == {"word": "the", "count": 15}
    assert list(run.steps) == [s.name for s in wordcount.STEPS]
    assert all(s["state"] == "completed" for s in run.steps.values())
    assert run.messages[-1] == f"Counted {len(text.split())} of {len(text.split())} words"
    assert run.progress == 100.0
    progress = [e["progress"] for e in run.events if "progress" in e]
    assert progress == sorted(progress)  # never backwards
    assert run.events[-1]["kind"] == "status"


def test_a_permanent_failure_is_recorded_as_the_worker_stores_it() -> None:
    run = testing.run_sync(job_type(example("wordcount"), "word_count"), {"text": "!!! ???"})
    assert run.status == "failed"
    assert run.error == {
        "type": "PermanentError",
        "category": "permanent",
        "message": "the text has no words in it",
    }
    assert run.steps["split"]["state"] == "failed"
    assert "count" not in run.steps


def test_input_that_does_not_fit_is_refused_as_a_submit_is() -> None:
    with pytest.raises(InvalidInput, match=r"input\.top"):
        testing.run_sync(job_type(example("wordcount"), "word_count"), {"text": "a", "top": 0})


async def test_company_analysis_resumes_from_checkpoints_and_classifies_a_rate_limit() -> None:
    module = example("company_analysis")
    analysis = job_type(module, "company_analysis")
    with module.FakeUpstream() as upstream:
        params = {"company": "Acme", "upstream_url": upstream.url, "step_s": 0}
        first = await testing.run(analysis, params)
        assert first.status == "failed"
        assert first.error is not None and first.error["category"] == "transient"
        assert "Retry-After: 1" in first.error["message"]
        done = {n: s["result"] for n, s in first.steps.items() if s["state"] == "completed"}
        assert list(done) == ["profile", "financials", "news"]
        calls_before = sum(upstream.calls.values())
        second = await testing.run(analysis, params, attempt=2, checkpoints=done)
        assert second.status == "completed", second.error
        assert sum(upstream.calls.values()) == calls_before + 1  # only competitors again
        assert second.result["summary"].startswith("Acme: $310M revenue")


async def test_an_unreachable_upstream_is_transient() -> None:
    analysis = job_type(example("company_analysis"), "company_analysis")
    run = await testing.run(analysis, {"company": "Acme", "upstream_url": "http://127.0.0.1:9"})
    assert run.status == "failed"
    assert run.error is not None and run.error["category"] == "transient"


async def test_lead_scrape_waits_for_its_question_then_runs_with_an_answer() -> None:
    leads = job_type(example("lead_scrape"), "lead_scrape")
    asked = await testing.run(leads, {"city": "Lisbon", "page_s": 0})
    assert asked.status == "waiting"
    assert asked.question is not None and asked.question["step"] == "pick"
    ids = [c["const"] for c in asked.question["schema"]["properties"]["picks"]["items"]["oneOf"]]
    answered = await testing.run(
        leads, {"city": "Lisbon", "page_s": 0}, answers={"pick": {"picks": ids[:3]}}
    )
    assert answered.status == "completed", answered.error
    assert answered.result["summary"].startswith("3 of 3 leads enriched")
    assert [s["state"] for s in answered.run_steps] == ["completed"] * 3
    assert all(s["parent"] == "enrich" for s in answered.run_steps)
    with pytest.raises(testing.AnswerDoesNotFit, match=r"answer\.picks"):
        await testing.run(leads, {"city": "Lisbon", "page_s": 0}, answers={"pick": {"picks": []}})


async def test_children_are_recorded_and_waiting_on_them_says_what_to_do() -> None:
    leads = job_type(example("lead_scrape"), "lead_scrape")
    params = {"city": "Lisbon", "page_s": 0, "children": True}
    asked = await testing.run(leads, params)
    assert asked.question is not None
    first = asked.question["schema"]["properties"]["picks"]["items"]["oneOf"][0]["const"]
    run = await testing.run(leads, params, answers={"pick": {"picks": [first]}})
    assert run.status == "failed"
    assert [c["type"] for c in run.children] == ["lead_enrich"]
    assert isinstance(run.exception, NotImplementedError)
    assert "jobcast.testing.run" in str(run.exception)


class _Nothing(BaseModel):
    pass


async def _live(job: JobContext, params: _Nothing) -> dict[str, Any]:
    async with job.step("write"):
        await job.set_metadata({"rows": 3}, source="feed")
        out = job.stream("log")
        await out.write("row 1\n")
        await out.write_json({"row": 2})
    return {"summary": "3 rows"}


def test_metadata_and_streams_are_recorded() -> None:
    live = JobType("live", "Live", _Nothing, _live, steps=(Step("write", "Write"),))
    run = testing.run_sync(live, {})
    assert run.metadata == {"rows": 3, "source": "feed"}
    assert run.streams == {"log": 'row 1\n{"row":2}\n'}
    stream_events = [e for e in run.events if e["kind"] == "stream"]
    assert [e["offset"] for e in stream_events] == [0, len("row 1\n")]


def test_the_recording_context_has_every_verb_of_the_job_context() -> None:
    wanted = {n for n in dir(JobContext) if not n.startswith("_")} | {"attempt"}
    context = testing.RecordingContext(job_type(example("wordcount"), "word_count"))
    assert {n for n in wanted if not hasattr(context, n)} == set()


def test_the_docs_testing_snippet_runs() -> None:
    doc = (EXAMPLES.parent / "docs" / "job-types.md").read_text()
    section = doc.split("## 7. Testing your job code", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    sys.modules.setdefault("wordcount", example("wordcount"))
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/job-types.md", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()
