"""``csv_insights`` end to end: files uploaded over HTTP, profiled by a real worker."""

from __future__ import annotations

import math
import random
import statistics
import uuid
from typing import Any

import httpx
import pytest

from tests.support import Stack, submit, watch

CITIES = {"Paris": 40, "Lyon": 30, "Nice": 20, "Lille": 6, "Brest": 3, "Metz": 1}


def linear_quantile(values: list[float], q: float) -> float:
    """The quantile with linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def sales_csv() -> bytes:
    """100 rows: an id 1..100, its exact linear relatives, a column with every tenth value
    missing, a city column of known frequencies, and a column with two outliers."""
    cities = [c for c, n in CITIES.items() for _ in range(n)]
    random.Random(6).shuffle(cities)
    lines = ["id,double,countdown,noise,city,reading"]
    for i in range(1, 101):
        noise = "" if i % 10 == 0 else str((i * 37) % 11)
        reading = {17: "1000", 58: "-500"}.get(i, str(10 + i % 10))
        lines.append(f"{i},{2 * i + 3},{500 - i},{noise},{cities[i - 1]},{reading}")
    return ("\n".join(lines) + "\n").encode()


async def upload(client: httpx.AsyncClient, name: str, data: bytes) -> str:
    response = await client.post("/api/uploads", files={"file": (name, data, "text/csv")})
    assert response.status_code == 201, response.text
    upload_id: str = response.json()["uploads"][0]["id"]
    return upload_id


async def profile(
    stack: Stack,
    files: dict[str, bytes],
    **job_input: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Upload the files, run csv_insights on them; the final job and the events seen."""
    token = await stack.owner()
    async with stack.client(token) as client:
        ids = [await upload(client, name, data) for name, data in files.items()]
        job_id = await submit(client, "csv_insights", upload_ids=ids, **job_input)
        seen = await watch(stack, token, job_id, timeout_s=60)
        job = (await client.get(f"/api/jobs/{job_id}")).json()
    return job, seen.events


def columns_of(result: dict[str, Any], file_index: int = 0) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result["files"][file_index]["columns"]}


async def test_profiles_match_numbers_computed_by_hand(stack: Stack) -> None:
    job, events = await profile(
        stack, {"sales.csv": sales_csv(), "scores.csv": b"team;points\nred;3\nblue;5\ngreen;4\n"}
    )
    assert job["status"] == "completed", job["error"]
    result = job["result"]
    assert result["summary"] == {"files": 2, "rows": 103, "columns": 8, "strong_correlations": 3}
    sales, scores = result["files"]
    assert (sales["filename"], sales["rows"], sales["column_count"], sales["delimiter"]) == (
        "sales.csv",
        100,
        6,
        ",",
    )
    assert (scores["delimiter"], scores["rows"]) == (";", 3)

    columns = columns_of(result)
    ids = [float(i) for i in range(1, 101)]
    id_column = columns["id"]
    assert id_column["kind"] == "numeric" and id_column["dtype"] == "Int64"
    assert (id_column["min"], id_column["max"], id_column["missing"]) == (1, 100, 0)
    assert id_column["mean"] == 50.5 and id_column["median"] == 50.5
    assert id_column["std"] == pytest.approx(statistics.stdev(ids))
    for name, q in (("p5", 0.05), ("p25", 0.25), ("p75", 0.75), ("p95", 0.95)):
        assert id_column[name] == pytest.approx(linear_quantile(ids, q)), name
    assert id_column["distinct"] == 100 and id_column["outliers"]["count"] == 0

    noise = columns["noise"]
    assert noise["missing"] == 10 and noise["missing_pct"] == 10.0
    present = [float((i * 37) % 11) for i in range(1, 101) if i % 10]
    assert noise["mean"] == pytest.approx(statistics.fmean(present))

    city = columns["city"]
    assert city["kind"] == "text" and city["distinct"] == len(CITIES)
    assert city["top_values"] == [{"value": c, "count": n} for c, n in list(CITIES.items())[:5]]

    outliers = columns["reading"]["outliers"]
    assert outliers["count"] == 2 and outliers["examples"] == [1000, -500]

    correlations = sales["correlations"]
    assert correlations["columns"] == ["id", "double", "countdown", "noise", "reading"]
    strong = {(p["a"], p["b"]): p["r"] for p in correlations["strong"]}
    assert strong[("id", "double")] == pytest.approx(1.0)
    assert strong[("id", "countdown")] == pytest.approx(-1.0)
    assert strong[("double", "countdown")] == pytest.approx(-1.0)
    assert all(abs(r) >= 0.5 for r in strong.values()) and len(strong) == 3
    matrix = correlations["matrix"]
    assert [matrix[i][i] for i in range(5)] == [1.0] * 5
    assert matrix[0][1] == matrix[1][0] == pytest.approx(1.0)
    assert scores["correlations"]["strong"] == []  # one numeric column: nothing to pair

    steps = [e["step"] for e in events if e["kind"] == "step" and e["state"] == "completed"]
    assert steps == ["parse", "profile", "correlate", "report"]

    # reports made within the progress window are stored as one, the latest: each step's
    # last is always there, and every one stored says what was done
    def said(step: str) -> list[str]:
        return [e["message"] for e in events if e["kind"] == "progress" and e["step"] == step]

    assert said("parse")[-1] == "Read scores.csv: 3 rows, 2 columns"
    assert set(said("parse")) <= {
        "Reading sales.csv",
        "Read sales.csv: 100 rows, 6 columns",
        "Reading scores.csv",
        "Read scores.csv: 3 rows, 2 columns",
    }
    profiled = said("profile")
    assert profiled[-1] == "Profiled column 8 of 8 (points in scores.csv)"
    assert all(m.startswith("Profiled column ") and m.endswith(".csv)") for m in profiled)


BAD_FILES = [
    pytest.param(
        "image.csv",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        "image.csv is not a CSV file: it holds binary data, not text",
        id="binary",
    ),
    pytest.param(
        "latin.csv",
        "name,city\nJosé,Zürich\n".encode("latin-1"),
        "latin.csv is not UTF-8 text (byte 0xe9 on line 2): save it as UTF-8 and upload it again",
        id="latin-1",
    ),
    pytest.param(
        "ragged.csv",
        b"a,b,c\n1,2,3\n4,5\n6,7,8\n",
        "ragged.csv: line 3 has 2 fields where the header has 3",
        id="ragged",
    ),
    pytest.param("empty.csv", b"", "empty.csv is empty", id="empty"),
    pytest.param(
        "header.csv", b"a,b\n", "header.csv has a header but no data rows", id="header-only"
    ),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_FILES)
async def test_a_bad_file_fails_at_once_saying_what_is_wrong(
    stack: Stack, name: str, data: bytes, message: str
) -> None:
    job, _ = await profile(stack, {name: data})
    assert job["status"] == "failed" and job["attempts"] == 1
    assert job["error"] == {"type": "PermanentError", "category": "permanent", "message": message}
    assert [s["status"] for s in job["steps"]] == ["failed", "waiting", "waiting", "waiting"]


async def test_more_rows_than_max_rows_is_refused(stack: Stack) -> None:
    job, _ = await profile(
        stack, {"long.csv": b"n\n" + b"".join(b"%d\n" % i for i in range(10))}, max_rows=5
    )
    assert job["status"] == "failed" and job["error"]["category"] == "permanent"
    assert job["error"]["message"] == "long.csv has more than 5 rows (max_rows)"


async def test_only_the_owners_own_uploads_can_be_profiled(stack: Stack) -> None:
    alice, bob = await stack.owner(), await stack.owner()
    async with stack.client(alice) as as_alice, stack.client(bob) as as_bob:
        alices = await upload(as_alice, "mine.csv", b"a\n1\n")
        answers = [
            await as_bob.post(
                "/api/jobs", json={"type": "csv_insights", "input": {"upload_ids": ids}}
            )
            for ids in ([alices], [str(uuid.uuid4())], ["not-an-id"], [], [alices, alices])
        ]
        bobs_jobs = (await as_bob.get("/api/jobs")).json()["jobs"]
        # the refusal did not use the upload up: its owner can still profile it
        job_id = await submit(as_alice, "csv_insights", upload_ids=[alices])
        await watch(stack, alice, job_id)
        job = (await as_alice.get(f"/api/jobs/{job_id}")).json()
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "invalid_input"
    assert bobs_jobs == []
    assert job["status"] == "completed" and job["result"]["files"][0]["rows"] == 1


async def test_a_csv_job_is_labelled_by_its_files_names_in_the_list_and_its_view(
    stack: Stack,
) -> None:
    """The input holds upload ids only: the label names the first file, and how many more."""
    token = await stack.owner()
    async with stack.client(token) as client:
        first = [await upload(client, "sales.csv", sales_csv())]
        both = [await upload(client, name, sales_csv()) for name in ("q1.csv", "q2.csv")]
        one_id = await submit(client, "csv_insights", upload_ids=first)
        two_id = await submit(client, "csv_insights", upload_ids=both[::-1])
        audit_id = await submit(client, "site_audit", url="https://example.invalid/shop/")
        demo_id = await submit(client, "demo", duration=0.1)
        listed = {j["id"]: j["label"] for j in (await client.get("/api/jobs")).json()["jobs"]}
        one = (await client.get(f"/api/jobs/{one_id}")).json()
        await watch(stack, token, two_id, timeout_s=60)
        two = (await client.get(f"/api/jobs/{two_id}")).json()
    assert listed == {
        one_id: "sales.csv",
        two_id: "q2.csv +1",  # the first the input lists
        audit_id: "https://example.invalid/shop/",  # its type's label_field
        demo_id: None,  # nothing tells it apart
    }
    assert one["label"] == "sales.csv"
    assert two["status"] == "completed" and two["label"] == "q2.csv +1"
