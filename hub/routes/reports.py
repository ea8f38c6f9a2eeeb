"""Asking for a batch's course progress report, and reading the caller's report jobs."""

from __future__ import annotations

import logging

from aiohttp import web

from hub import errors, events, ids
from hub.access import batch_for
from hub.envelope import json_object, string_field
from hub.job import Status
from hub.request import Result, api, budgeted, hub_of
from hub.routes.views import job_view

routes = web.RouteTableDef()
log = logging.getLogger(__name__)


@routes.post("/v1/reports/course-progress")
@api("api.report.submit", status=202)
async def submit(request: web.Request) -> Result:
    who = await budgeted(request, "submit")
    hub = hub_of(request)
    batch_id = string_field(await json_object(request), "batchId")
    batch = await batch_for(hub.source, who, batch_id)
    submission = await hub.jobs.submit(who.user_id, batch.batch_id, batch.course_id)
    if not submission.created:
        hub.metrics.requests.labels("duplicate").inc()
        duplicate = events.draft("report.duplicate", submission.job_id, batch.batch_id)
        await hub.events.emit(who.user_id, submission.job_id, duplicate)
        raise errors.DOWNLOAD_IN_PROGRESS({"jobId": submission.job_id})
    try:
        await hub.jobs.enqueue(submission.job_id)
    except Exception:
        log.exception("could not enqueue report job %s", submission.job_id)
        job = await hub.jobs.get(submission.job_id)
        if job:
            await hub.jobs.fail(job, "ENQUEUE_FAILED")
        raise errors.NOT_STARTED() from None
    hub.metrics.requests.labels("submitted").inc()
    return {"jobId": submission.job_id, "batchId": batch.batch_id, "status": Status.SUBMITTED.value}


@routes.get("/v1/reports/jobs/{jobId}")
@api("api.report.job.read")
async def read_job(request: web.Request) -> Result:
    who = await budgeted(request, "read")
    hub = hub_of(request)
    job = await hub.jobs.get(ids.job_id(request.match_info["jobId"]))
    if job is None:
        raise errors.JOB_NOT_FOUND()
    if not who.is_support:
        if job.requested_by != who.user_id:
            raise errors.NOT_YOUR_JOB()
        await batch_for(hub.source, who, job.batch_id)
    return await job_view(job, hub.storage)


@routes.get("/v1/reports/jobs")
@api("api.report.job.list")
async def list_jobs(request: web.Request) -> Result:
    who = await budgeted(request, "dashboard")
    hub = hub_of(request)
    batch_id = request.query.get("batchId") or None
    if batch_id is not None:
        await batch_for(hub.source, who, batch_id)
    allowed: dict[str, bool] = {}
    jobs = []
    for job in await hub.jobs.recent(who.user_id, batch_id):
        if job.batch_id not in allowed:
            batch = await hub.source.batch(job.batch_id)
            allowed[job.batch_id] = batch is not None and batch.allows(who.user_id)
        if allowed[job.batch_id]:
            jobs.append(await job_view(job, hub.storage))
    return {"jobs": jobs}
