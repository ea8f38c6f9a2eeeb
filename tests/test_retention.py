"""Reports are personal data: past REPORT_RETENTION their files are deleted by the workers' cron job, no
link leads to them any more, and the jobs' records in Redis go soon after."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from arq.worker import Worker
from redis.asyncio import Redis

from hub import keys
from hub.config import RECORD_GRACE_SECONDS, Settings
from hub.job import Job
from hub.storage import Storage
from jobs.retention import REMOVE_EXPIRED
from tests.helpers import MENTOR, Call, next_event, running_worker

BATCH = "batch-0001"
# A worker uploading a report: the first part (5 MiB) is written, the rest is slow to come.
UPLOADING = """
import asyncio, sys
from hub.config import load
from hub.storage import CHUNK_SIZE, Storage

async def rows():
    yield b"x" * (CHUNK_SIZE + 1)
    await asyncio.sleep(600)

asyncio.run(Storage(load()).put(sys.argv[1], rows(), "upload.csv"))
"""


@pytest.fixture
def retention() -> int:
    """REPORT_RETENTION of the test, in seconds; a test may parametrize its own."""
    return 1


@pytest.fixture
def env(env: dict[str, str], retention: int) -> dict[str, str]:
    return {**env, "REPORT_RETENTION": str(retention)}


async def make_report(call: Call, http: aiohttp.ClientSession, socket_url: Any) -> dict[str, Any]:
    """Clicks for BATCH's report and returns its `report.completed` event."""
    async with http.ws_connect(await socket_url()) as ws:
        status, _ = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        assert status == 202
        return await next_event(ws, "report.completed")


async def stored_file(redis: Redis, settings: Settings, job_id: str) -> Path:
    job = Job.decode(await redis.hgetall(keys.job(job_id)))
    assert job is not None and job.key is not None
    return Storage(settings).local_path(job.key)


async def wait_until_gone(path: Path, within: float = 10) -> None:
    """The cron job tells no one it has run: watch the file."""
    async with asyncio.timeout(within):
        while await asyncio.to_thread(path.exists):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def wait_past_retention(completed: dict[str, Any], retention: int) -> None:
    """Until the report's retention is up, by the time of its `report.completed` event."""
    made = datetime.fromisoformat(completed["ts"]).timestamp()
    await asyncio.sleep(max(0.0, made + retention + 1.1 - time.time()))


@pytest.mark.parametrize("retention", [300])
async def test_the_cron_job_deletes_reports_past_the_retention_and_keeps_the_rest(
    call: Call, http: aiohttp.ClientSession, socket_url: Any, worker: Worker, redis: Redis, settings: Settings
) -> None:
    old = await stored_file(redis, settings, (await make_report(call, http, socket_url))["jobId"])
    fresh = await stored_file(redis, settings, (await make_report(call, http, socket_url))["jobId"])
    made_long_ago = time.time() - 2 * settings.report_retention
    os.utime(old, (made_long_ago, made_long_ago))

    await worker.pool.enqueue_job(REMOVE_EXPIRED)

    await wait_until_gone(old)
    assert fresh.is_file()
    assert not old.parent.exists(), "the deleted report's folders (named by batch and job) are removed too"


async def test_a_job_past_the_retention_shows_no_link_and_says_why(
    call: Call, http: aiohttp.ClientSession, socket_url: Any, worker: Worker, retention: int
) -> None:
    completed = await make_report(call, http, socket_url)
    await wait_past_retention(completed, retention)

    status, body = await call("GET", f"/v1/reports/jobs/{completed['jobId']}")

    assert status == 200
    job = body["result"]
    assert (job["status"], job["downloadUrl"], job["expiresAt"], job["error"]) == (
        "SUCCESS", None, None, "REPORT_EXPIRED"
    )  # fmt: skip


async def test_support_replay_of_an_expired_report_says_so_instead_of_minting_a_link(
    call: Call, http: aiohttp.ClientSession, socket_url: Any, worker: Worker, retention: int, token: Any
) -> None:
    completed = await make_report(call, http, socket_url)
    await wait_past_retention(completed, retention)

    support = {"Authorization": f"Bearer {token('support-1', 'SUPPORT')}"}
    status, body = await call("POST", f"/v1/support/jobs/{completed['jobId']}/replay", user=None, headers=support)

    assert (status, body["params"]["err"]) == (404, "REPORT_EXPIRED")


async def test_a_link_handed_out_before_the_retention_ended_stops_working_then(
    call: Call, http: aiohttp.ClientSession, socket_url: Any, worker: Worker, retention: int
) -> None:
    completed = await make_report(call, http, socket_url)
    await wait_past_retention(completed, retention)

    async with aiohttp.ClientSession() as fresh, fresh.get(completed["downloadUrl"]) as response:
        status, body = response.status, await response.json()

    assert (status, body["params"]["err"]) == (404, "REPORT_EXPIRED")


@pytest.mark.parametrize("retention", [300])
async def test_a_finished_jobs_records_expire_an_hour_after_its_report(
    call: Call, http: aiohttp.ClientSession, socket_url: Any, worker: Worker, redis: Redis, retention: int
) -> None:
    job_id = (await make_report(call, http, socket_url))["jobId"]
    kept_ms = (retention + RECORD_GRACE_SECONDS) * 1000

    for key in (keys.job(job_id), keys.job_events(job_id), keys.user_events(MENTOR)):
        assert kept_ms - 10_000 < await redis.pttl(key) <= kept_ms, key


def start_upload(env: dict[str, str], key: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", UPLOADING, key], env={**os.environ, **env})


async def staged_file(settings: Settings, key: str, within: float = 20) -> Path:
    """The half-written file of an upload in progress to `key`, once its first part is on disk."""
    target = Storage(settings).local_path(key)

    def found() -> list[Path]:
        return list(target.parent.glob(f"{target.name}#*")) if target.parent.is_dir() else []

    async with asyncio.timeout(within):
        while not (staged := await asyncio.to_thread(found)):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return staged[0]


async def test_a_worker_starting_removes_uploads_a_killed_worker_left_and_keeps_live_ones(
    env: dict[str, str], settings: Settings, redis: Redis, batch: dict[str, Any]
) -> None:
    killed = start_upload(env, "reports/b/killed-job/run/upload.csv")
    live = start_upload(env, "reports/b/live-job/run/upload.csv")
    try:
        left = await staged_file(settings, "reports/b/killed-job/run/upload.csv")
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        long_ago = time.time() - 3600  # longer than any run may take (REPORT_TIMEOUT)
        os.utime(left, (long_ago, long_ago))
        writing = await staged_file(settings, "reports/b/live-job/run/upload.csv")

        async with running_worker(settings) as worker:
            async with asyncio.timeout(20):
                while "services" not in worker.ctx:  # noqa: ASYNC110 (arq tells no one it has started)
                    await asyncio.sleep(0.05)

        assert not left.exists()
        assert not left.parent.parent.exists(), "the folders named by the killed upload's job are removed too"
        assert writing.is_file()
    finally:
        for process in (killed, live):
            process.kill()
            process.wait()
