"""The three seed scenarios, end to end: a real hub, a real arq worker, real HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import sqlite3
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from arq.worker import Worker

from hub import keys
from hub.config import Settings
from hub.source.seed import seed
from tests.helpers import MENTOR, Call, next_event, running_worker, worker_started

BATCH = "batch-0001"
FAILED_MESSAGE = "Download has failed. Please try again after sometime"
IN_PROGRESS_MESSAGE = "Download in-progress. Please try after sometime"


@pytest.fixture
def broken_row(settings: Settings, batch) -> None:
    """A participant whose name is not valid UTF-8: the source cannot read that row."""
    with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE users SET name = CAST(x'ff' AS TEXT) WHERE user_id IN (SELECT user_id FROM users LIMIT 1)")


async def test_click_makes_the_report_in_background_and_notifies_when_ready(
    call: Call, http: aiohttp.ClientSession, socket_url, worker: Worker
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        status, body = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        assert status == 202
        assert body["result"]["status"] == "SUBMITTED"
        job_id = body["result"]["jobId"]
        submitted = await next_event(ws, "report.submitted")
        assert submitted["jobId"] == job_id
        assert submitted["message"] == "Your download has started. You can continue using the app."
        ready = await next_event(ws, "report.completed")
    assert ready["message"] == "Your download is ready."
    assert ready["rows"] == 120
    async with aiohttp.ClientSession() as anonymous, anonymous.get(ready["downloadUrl"]) as response:
        assert response.status == 200
        assert f'filename="{ready["fileName"]}"' in response.headers["Content-Disposition"]
        content = await response.read()
    assert len(content) == ready["bytes"]
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert len(rows) == 1 + 120


async def test_completed_job_reads_as_success_with_a_fresh_link(call: Call, socket_url, http, worker) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        _, body = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        ready = await next_event(ws, "report.completed")
    status, job = await call("GET", f"/v1/reports/jobs/{body['result']['jobId']}")
    assert status == 200
    assert job["result"]["status"] == "SUCCESS"
    assert job["result"]["rows"] == 120
    assert job["result"]["downloadUrl"].startswith(ready["downloadUrl"].split("?")[0])
    _, listing = await call("GET", f"/v1/reports/jobs?batchId={BATCH}")
    assert [j["jobId"] for j in listing["result"]["jobs"]] == [body["result"]["jobId"]]


async def test_a_report_whose_source_breaks_fails_with_the_contract_message(
    call: Call, socket_url, http, broken_row: None, worker
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        status, _ = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        assert status == 202
        failed = await next_event(ws, "report.failed")
    assert failed["message"] == FAILED_MESSAGE
    assert failed["reason"] == "SOURCE_ERROR"


async def test_a_source_file_that_vanishes_fails_the_report_instead_of_hanging(
    call: Call, socket_url, http, settings: Settings, redis, tmp_path: Path
) -> None:
    """The worker's copy of the source disappears after it started: the mentor still hears back."""
    copy = tmp_path / "worker-copy.db"
    with (
        sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as original,
        sqlite3.connect(copy) as dst,
    ):
        original.backup(dst)
    async with running_worker(settings.with_(source_url=f"sqlite:///{copy}")) as started:
        await worker_started(started)
        copy.unlink()
        async with http.ws_connect(await socket_url()) as ws:
            status, _ = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
            assert status == 202
            failed = await next_event(ws, "report.failed")
    assert failed["reason"] == "SOURCE_ERROR"
    assert failed["message"] == FAILED_MESSAGE


async def test_a_source_that_cannot_be_read_answers_source_error_without_a_traceback(
    call: Call, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a hub crash (500 SERVER_ERROR and a traceback in the log): the contract's SOURCE_ERROR, and one
    line saying what the source said."""
    with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
        conn.execute("DROP TABLE enrolments")
    status, body = await call("GET", f"/v1/batches/{BATCH}/dashboard")
    assert (status, body["params"]["err"], body["responseCode"]) == (500, "SOURCE_ERROR", "SERVER_ERROR")
    assert "enrolments" not in body["params"]["errmsg"]  # what the source said is for operators only
    assert [record for record in caplog.records if record.exc_info] == []
    assert "no such table: enrolments" in caplog.text


async def test_second_click_while_running_says_in_progress_and_sends_a_duplicate_event(
    call: Call, socket_url, http
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        _, first = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        status, second = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        duplicate = await next_event(ws, "report.duplicate")
    assert status == 409
    assert second["params"]["err"] == "DOWNLOAD_IN_PROGRESS"
    assert second["params"]["errmsg"] == IN_PROGRESS_MESSAGE
    assert second["responseCode"] == "CONFLICT"
    assert second["result"]["jobId"] == first["result"]["jobId"]
    assert duplicate["message"] == IN_PROGRESS_MESSAGE
    assert duplicate["jobId"] == first["result"]["jobId"]


async def test_fifty_simultaneous_clicks_make_exactly_one_job(call: Call, redis) -> None:
    results = await asyncio.gather(
        *(call("POST", "/v1/reports/course-progress", json={"batchId": BATCH}) for _ in range(50))
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [202] + [409] * 49
    job_ids = {body["result"]["jobId"] for _, body in results}
    assert len(job_ids) == 1
    assert await redis.zcard("arq:queue") == 1
    duplicates = [e for _, e in await redis.xrange(keys.user_events(MENTOR)) if b"report.duplicate" in e[b"e"]]
    assert len(duplicates) == 49


async def test_a_click_for_another_batch_starts_its_own_job(call: Call, source) -> None:
    await seed(source, 5, batch_id="batch-0002", course_id="do_course_0001", mentor_id=MENTOR, progress=None)
    first_status, first = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
    second_status, second = await call("POST", "/v1/reports/course-progress", json={"batchId": "batch-0002"})
    assert (first_status, second_status) == (202, 202)
    assert first["result"]["jobId"] != second["result"]["jobId"]


@pytest.mark.parametrize("ending", ["report.completed", "report.failed"])
async def test_a_click_after_the_earlier_job_ended_starts_a_new_job(
    call: Call, socket_url, http, worker, ending: str, request: pytest.FixtureRequest
) -> None:
    if ending == "report.failed":
        request.getfixturevalue("broken_row")
    async with http.ws_connect(await socket_url()) as ws:
        _, first = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        await next_event(ws, ending)
    status, second = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
    assert status == 202
    assert second["result"]["jobId"] != first["result"]["jobId"]


async def test_a_batch_with_no_participants_gives_a_header_only_file(
    call: Call, socket_url, http, source, worker
) -> None:
    await seed(source, 0, batch_id="batch-empty", course_id="do_course_0001", mentor_id=MENTOR, progress=None)
    async with http.ws_connect(await socket_url()) as ws:
        status, _ = await call("POST", "/v1/reports/course-progress", json={"batchId": "batch-empty"})
        assert status == 202
        ready = await next_event(ws, "report.completed")
    assert ready["rows"] == 0
    async with aiohttp.ClientSession() as anonymous, anonymous.get(ready["downloadUrl"]) as response:
        lines = (await response.read()).decode("utf-8-sig").splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Collection Id,Collection Name,Batch Id")


async def test_a_large_report_shows_progress_at_most_twice_a_second(
    call: Call, socket_url, http, source, worker
) -> None:
    await seed(source, 100_000, batch_id="batch-large", course_id="do_course_0001", mentor_id=MENTOR, progress=None)
    async with http.ws_connect(await socket_url()) as ws:
        await call("POST", "/v1/reports/course-progress", json={"batchId": "batch-large"})
        frames = []
        async with asyncio.timeout(60):
            while not frames or frames[-1]["type"] != "report.completed":
                frames.append(await ws.receive_json())
    progress = [f for f in frames if f["type"] == "report.progress"]
    assert progress, "a 100k report takes long enough to report progress"
    assert all(p["total"] == 100_000 and 0 <= p["percent"] <= 99 for p in progress)
    assert [p["rows"] for p in progress] == sorted(p["rows"] for p in progress)
    stamps = [datetime.fromisoformat(p["ts"].replace("Z", "+00:00")) for p in progress]
    assert all((later - earlier).total_seconds() >= 0.45 for earlier, later in itertools.pairwise(stamps))
