"""Asking for a batch's course progress report, and reading the caller's report jobs."""

from __future__ import annotations

import logging

from aiohttp import web
from redis.exceptions import RedisError

from hub import errors, ids, metrics
from hub.access import batch_for, visible_batches
from hub.envelope import json_object, optional_string, string_field
from hub.exhaust import MAX_KEY_LENGTH
from hub.identity import Principal
from hub.job import FORMATS, Status, job_ref
from hub.request import Result, api, budgeted, caller, hub_of
from hub.routes.views import job_view
from hub.services import Hub
from hub.source import Batch

routes = web.RouteTableDef()
log = logging.getLogger(__name__)
# How many times a click that keeps finding jobs which end as it is told of them tries, in all.
CLICK_ATTEMPTS = 5


@routes.post("/v1/reports/course-progress")
@api("api.report.submit", status=202)
async def submit(request: web.Request) -> Result:
    who = await caller(request)
    hub = hub_of(request)
    body = await json_object(request)
    fmt = body.get("format", "csv")
    if fmt not in FORMATS:
        raise errors.INVALID_FORMAT(supported=", ".join(FORMATS))
    async with hub.support.refusals.noted(who.user_id, body.get("batchId")):  # support sees clicks that made no job
        await hub.limits.take(who.user_id, "submit")
        batch = await batch_for(hub.source, who, string_field(body, "batchId"))
        job_id = await start_report(hub, who, batch, optional_string(body, "encryptionKey", MAX_KEY_LENGTH), fmt)
    return {"jobId": job_id, "ref": job_ref(job_id), "batchId": batch.batch_id, "status": Status.SUBMITTED.value}


async def start_report(hub: Hub, who: Principal, batch: Batch, password: str | None = None, fmt: str = "csv") -> str:
    """A click, or a data-exhaust request: the job with its events, in the queue, its file a CSV or an
    XLSX (`fmt`); with a password, a ZIP encrypted with it holding that file. While the caller has a job
    running for the batch, whatever its format, 409 and a duplicate event (a click that finds a job which
    ends while it is being told so tries again)."""
    for _ in range(CLICK_ATTEMPTS):
        protected = password is not None
        submission = await hub.jobs.submit(who.user_id, batch.batch_id, batch.course_id, protected, fmt)
        if submission.created:
            break
        if await announce_duplicate(hub, who, submission.job_id, batch.batch_id, submission.click):
            raise errors.DOWNLOAD_IN_PROGRESS({"jobId": submission.job_id, "ref": job_ref(submission.job_id)})
    else:
        raise errors.NOT_STARTED()
    try:
        await hub.jobs.enqueue(submission.job, password)
    except Exception:
        if await hub.jobs.queued(submission.job_id):  # queued after all: only the reply was lost
            log.warning("report job %s: enqueue answered with an error, but arq holds the job", submission.job_id)
        else:
            log.exception("could not enqueue report job %s", submission.job_id)
            await hub.jobs.fail(submission.job, "ENQUEUE_FAILED")
            raise errors.NOT_STARTED() from None
    metrics.REPORT_REQUESTS.labels("submitted").inc()
    await index_for_support(hub, submission.job_id)
    if submission.unsure is not None:
        # Not acknowledged (503: a failover may take it back), but queued: if it survives, it runs and
        # the mentor hears of it; if not, nothing of it is left to wait for a worker.
        raise submission.unsure
    return submission.job_id


async def index_for_support(hub: Hub, job_id: str) -> None:
    """Enters the new job in support's indexes. Beside the job's creation rather than in it: a job that
    misses its entries (Redis lost in between) is still made and still heard of; only search misses it."""
    try:
        job = await hub.jobs.get(job_id)
        if job is not None:
            await hub.support.index.add(job)
    except (RedisError, OSError) as exc:
        log.warning("could not index report job %s for support: %s", job_id, exc)


async def announce_duplicate(hub: Hub, who: Principal, job_id: str, batch_id: str, click: str | None = None) -> bool:
    """Tells every open tab of the caller that the report they asked for again is still being made; False
    when it has ended in the meantime (nothing is said: a duplicate never follows a job's end)."""
    told = await hub.jobs.tell_duplicate(who.user_id, batch_id, job_id, click)
    if told:
        metrics.REPORT_REQUESTS.labels("duplicate").inc()
    return told


@routes.get("/v1/reports/jobs/{jobId}")
@api("api.report.job.read")
async def read_job(request: web.Request) -> Result:
    who = await budgeted(request, "read")
    hub = hub_of(request)
    job = await hub.jobs.get(ids.job_id(request.match_info["jobId"]))
    if job is None:
        raise errors.JOB_NOT_FOUND()
    mine = job.requested_by == who.user_id
    if not who.is_support:
        if not mine:
            raise errors.NOT_YOUR_JOB()
        await batch_for(hub.source, who, job.batch_id)
    return await job_view(job, hub.storage, with_link=mine)


@routes.get("/v1/reports/jobs")
@api("api.report.job.list")
async def list_jobs(request: web.Request) -> Result:
    who = await budgeted(request, "dashboard")
    hub = hub_of(request)
    batch_id = request.query.get("batchId") or None
    if batch_id is not None:
        await batch_for(hub.source, who, batch_id)
    recent = await hub.jobs.recent(who.user_id, batch_id)
    seen = await visible_batches(hub.source, who, (job.batch_id for job in recent))
    return {"jobs": [await job_view(job, hub.storage) for job in recent if job.batch_id in seen]}
