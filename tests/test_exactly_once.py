"""Every change to a job happens once, whatever the network does: a command that ran but whose reply was
lost is sent again by redis-py (a loopback proxy drops the reply to make it so), a job's record lost by
Redis is written anew by its worker, and a progress event Redis refuses costs the report nothing.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from hub import keys
from tests.helpers import MENTOR, Call, eventually, next_event, running_worker
from tests.proxy import Proxy, script_call
from tests.scrape import moved, scrape

BATCH = "batch-0001"
SUBMIT = "/v1/reports/course-progress"


@pytest.fixture
def env(env: dict[str, str], proxy: Proxy) -> dict[str, str]:
    return {**env, "REDIS_URL": proxy.url}


async def test_a_resent_submit_answers_the_job_it_made(call: Call, proxy: Proxy, timeline) -> None:
    proxy.drop_reply(script_call(b'"report.submitted"'))
    status, body = await call("POST", SUBMIT, json={"batchId": BATCH})
    assert proxy.dropped == 1
    assert status == 202, body
    _, listed = await call("GET", f"/v1/reports/jobs?batchId={BATCH}")
    assert [job["jobId"] for job in listed["result"]["jobs"]] == [body["result"]["jobId"]]
    assert await timeline(body["result"]["jobId"]) == ["report.submitted"]


async def test_a_resent_duplicate_tells_the_click_once(call: Call, proxy: Proxy, timeline) -> None:
    _, first = await call("POST", SUBMIT, json={"batchId": BATCH})
    proxy.drop_reply(script_call(b'"report.duplicate"'))
    status, _ = await call("POST", SUBMIT, json={"batchId": BATCH})
    assert proxy.dropped == 1
    assert status == 409
    assert await timeline(first["result"]["jobId"]) == ["report.submitted", "report.duplicate"]


@pytest.mark.parametrize("marker", [b"PROCESSING", b'"report.completed"'])
async def test_a_resent_step_of_a_report_leaves_one_completed_report_that_downloads(
    marker: bytes, call: Call, http: aiohttp.ClientSession, socket_url, settings, proxy: Proxy, timeline, redis
) -> None:
    proxy.drop_reply(script_call(marker))
    async with running_worker(settings), http.ws_connect(await socket_url()) as ws:
        _, body = await call("POST", SUBMIT, json={"batchId": BATCH})
        job_id = body["result"]["jobId"]
        completed = await next_event(ws, "report.completed")
        await eventually(lambda: _arq_done(redis, job_id))  # the worker has seen its (re-sent) ending answered
    assert proxy.dropped == 1
    assert (await timeline(job_id)).count("report.completed") == 1
    async with http.get(completed["downloadUrl"]) as download:
        assert download.status == 200
        assert (await download.read()).count(b"\n") == 121


async def test_an_ending_redis_refuses_for_a_while_is_retried_not_lost(
    call: Call, http: aiohttp.ClientSession, socket_url, settings, proxy: Proxy, timeline
) -> None:
    demoted = b"READONLY You can't write against a read only replica."  # a failover under way
    proxy.refuse(script_call(b'"report.completed"'), demoted, times=3)
    async with running_worker(settings), http.ws_connect(await socket_url()) as ws:
        _, body = await call("POST", SUBMIT, json={"batchId": BATCH})
        ending = await _ending(ws)
    assert proxy.refused == 3
    assert ending["type"] == "report.completed", ending
    assert await timeline(body["result"]["jobId"]) == ["report.submitted", "report.completed"]


async def _arq_done(redis: Redis, job_id: str) -> bool:
    return not await redis.exists(*keys.arq_held(job_id))


async def test_a_resent_failure_is_one_failure_counted_once(
    call: Call, http: aiohttp.ClientSession, socket_url, settings, proxy: Proxy, timeline, redis, hub: TestServer
) -> None:
    metrics = str(hub.make_url("/metrics"))  # the worker shares this process's registry
    before = await scrape(metrics)
    proxy.drop_reply(script_call(b'"report.failed"'))
    async with http.ws_connect(await socket_url()) as ws:
        _, body = await call("POST", SUBMIT, json={"batchId": BATCH})
        job_id = body["result"]["jobId"]
        with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
            conn.execute("DELETE FROM batches WHERE batch_id = ?", (BATCH,))  # gone before a worker took it
        async with running_worker(settings):
            failed = await next_event(ws, "report.failed")
            await eventually(lambda: _arq_done(redis, job_id))
    assert proxy.dropped == 1
    assert failed["reason"] == "BATCH_NOT_FOUND"
    assert (await timeline(job_id)).count("report.failed") == 1
    ended = {"outcome": "failed", "reason": "BATCH_NOT_FOUND"}
    assert moved(before, await scrape(metrics), "hub_reports_ended_total", **ended) == 1


async def test_a_job_whose_record_was_lost_still_ends_once(
    call: Call, http: aiohttp.ClientSession, socket_url, settings, redis, timeline, job_status
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        _, body = await call("POST", SUBMIT, json={"batchId": BATCH})
        job_id = body["result"]["jobId"]
        # What a failover to a replica that had not yet received the submit loses; arq's queued job stays.
        await redis.delete(keys.job(job_id), keys.job_events(job_id), keys.guard(MENTOR, BATCH))
        await redis.zrem(keys.ACTIVE, job_id)
        async with running_worker(settings):
            completed = await next_event(ws, "report.completed")
    assert completed["jobId"] == job_id
    assert await job_status(job_id) == "SUCCESS"
    assert await timeline(job_id) == ["report.completed"]


async def test_progress_that_redis_refuses_does_not_fail_the_report(
    call: Call, http: aiohttp.ClientSession, socket_url, settings, proxy: Proxy, monkeypatch
) -> None:
    monkeypatch.setattr("jobs.report.PROGRESS_EVERY_SECONDS", 0)  # a progress event for every chunk
    proxy.refuse(script_call(b'"report.progress"'))
    async with running_worker(settings), http.ws_connect(await socket_url()) as ws:
        await call("POST", SUBMIT, json={"batchId": BATCH})
        ending = await _ending(ws)
    assert proxy.refused >= 1
    assert ending["type"] == "report.completed", ending


async def _ending(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        frame = await ws.receive_json(timeout=15)
        if frame["type"] in ("report.completed", "report.failed"):
            return frame
