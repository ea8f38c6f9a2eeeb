"""The sweeper ends only jobs that cannot finish: a job waiting behind busy workers is told its place in
the queue, not failed; a job whose run is alive is never handed to a second worker; and of two runs of one
job, only the one that holds it can end it.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from hub import events, keys
from hub.envelope import iso
from hub.job import Status
from hub.reports import Outcome
from hub.request import HUB
from hub.source.seed import seed
from hub.sweeper import Sweeper
from jobs.worker import MAX_JOBS
from tests.helpers import MENTOR, Call, eventually, next_event, part_writers_stopped, running_worker

BATCH = "batch-0001"
SUBMIT = "/v1/reports/course-progress"


def sweeper_of(hub: TestServer) -> Sweeper:
    services = hub.app[HUB]
    return Sweeper(services.jobs, services.redis, services.settings, services.source)


async def waited_past_queue_wait(hub: TestServer, job_id: str) -> None:
    """Moves the job's submission back past `QUEUE_WAIT`, as if it had waited that long."""
    services = hub.app[HUB]
    job = await services.jobs.get(job_id)
    assert job is not None
    since = job.submitted_at - (services.settings.queue_wait_seconds + 5) * 1000
    await services.redis.hset(keys.job(job_id), "submittedAt", since)


@pytest.fixture
async def busy_batches(source) -> list[str]:
    """One batch per report a worker makes at once, mentored by MENTOR."""
    names = [f"batch-busy-{n}" for n in range(MAX_JOBS)]
    for name in names:
        await seed(source, 5, batch_id=name, course_id="do_course_0001", mentor_id=MENTOR, progress=None)
    return names


async def test_a_job_behind_busy_workers_is_told_its_place_not_failed(
    call: Call, http, socket_url, settings, hub: TestServer, busy_batches: list[str], job_status
) -> None:
    async with running_worker(settings) as worker, http.ws_connect(await socket_url()) as ws:
        await eventually(lambda: _started(worker.ctx))
        with part_writers_stopped():
            for batch in busy_batches:
                _, body = await call("POST", SUBMIT, json={"batchId": batch})
                await eventually(lambda job_id=body["result"]["jobId"]: _has_status(job_status, job_id, "PROCESSING"))
            _, body = await call("POST", SUBMIT, json={"batchId": BATCH})
            waiting = body["result"]["jobId"]
            await waited_past_queue_wait(hub, waiting)
            await sweeper_of(hub).sweep()
            told = await next_event(ws, "report.progress")
            assert await job_status(waiting) == "SUBMITTED"
    job = await hub.app[HUB].jobs.get(waiting)
    assert job is not None
    assert told["jobId"] == waiting
    assert told["queued"] is True and told["position"] == 1
    assert told["rows"] == 0 and told["total"] == 120
    assert told["promisedBy"] == iso(job.submitted_at + 10_000)  # the seed's promise under 10,000 participants


async def test_a_job_with_no_live_worker_fails_no_worker(call: Call, http, socket_url, hub: TestServer) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        _, body = await call("POST", SUBMIT, json={"batchId": BATCH})
        await waited_past_queue_wait(hub, body["result"]["jobId"])
        await sweeper_of(hub).sweep()
        failed = await next_event(ws, "report.failed")
    assert failed["jobId"] == body["result"]["jobId"]
    assert failed["reason"] == "NO_WORKER"


async def test_a_live_run_whose_liveness_lapsed_is_not_handed_to_another_worker(
    call: Call, http, socket_url, settings, hub: TestServer, redis, job_status, timeline
) -> None:
    async with running_worker(settings) as worker, http.ws_connect(await socket_url()) as ws:
        await eventually(lambda: _started(worker.ctx))
        with part_writers_stopped():
            _, body = await call("POST", SUBMIT, json={"batchId": BATCH})
            job_id = body["result"]["jobId"]
            await eventually(lambda: _has_status(job_status, job_id, "PROCESSING"))
            # As after a Redis outage longer than liveness lasts, or just as arq takes up a retried job.
            await redis.delete(keys.alive(job_id))
            sweeper = sweeper_of(hub)
            await sweeper.sweep()
            await sweeper.sweep()
            assert await redis.exists(keys.arq_held(job_id)[1]), "arq still counts the job as running"
        await next_event(ws, "report.completed")
    assert (await timeline(job_id)).count("report.completed") == 1


async def test_a_replaced_run_can_neither_fail_nor_end_the_job(hub: TestServer) -> None:
    jobs = hub.app[HUB].jobs
    job = (await jobs.submit(MENTOR, BATCH, "do_course_0001")).job
    await jobs.transition(job, Status.PROCESSING, run="first")
    await jobs.transition(job, Status.PROCESSING, run="second")  # the first run's worker was judged dead
    assert await jobs.fail(job, "STORAGE_ERROR", run="first") == Outcome.SUPERSEDED
    completed = events.draft("report.completed", job.job_id, BATCH)
    assert await jobs.transition(job, Status.SUCCESS, completed, run="first") == Outcome.SUPERSEDED
    assert await jobs.transition(job, Status.SUCCESS, completed, run="second") == Outcome.APPLIED
    ended = await jobs.get(job.job_id)
    assert ended is not None and ended.status == Status.SUCCESS


async def _started(ctx: dict[str, Any]) -> bool:
    return "services" in ctx


async def _has_status(job_status, job_id: str, status: str) -> bool:
    return await job_status(job_id) == status
