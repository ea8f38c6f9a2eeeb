"""Asking for a batch's course progress report, and reading the caller's report jobs."""

from __future__ import annotations

import logging

from aiohttp import web

from hub import events
from hub.access import batch_for
from hub.app import api, budgeted, hub_of, principal
from hub.envelope import HubError, json_object, respond, string_field

routes = web.RouteTableDef()
log = logging.getLogger(__name__)


@routes.post("/v1/reports/course-progress")
@api("api.report.submit")
async def submit(request: web.Request) -> web.Response:
    who = await budgeted(request, "submit")
    hub = hub_of(request)
    batch_id = string_field(await json_object(request), "batchId")
    batch = await batch_for(hub.source, who, batch_id)
    submission = await hub.jobs.submit(who.user_id, batch.batch_id, batch.course_id)
    if not submission.created:
        hub.metrics.requests.labels("duplicate").inc()
        duplicate = events.body("report.duplicate", submission.job_id, batch.batch_id)
        await hub.log.emit(who.user_id, submission.job_id, duplicate)
        raise HubError(409, "DOWNLOAD_IN_PROGRESS", events.MESSAGES["report.duplicate"], {"jobId": submission.job_id})
    try:
        await hub.jobs.enqueue(submission.job_id)
    except Exception:
        log.exception("could not enqueue report job %s", submission.job_id)
        job = await hub.jobs.get(submission.job_id)
        if job:
            await hub.jobs.fail(job, "ENQUEUE_FAILED")
        raise HubError(503, "SERVICE_UNAVAILABLE", "The report could not be started; please try again.") from None
    hub.metrics.requests.labels("submitted").inc()
    result = {"jobId": submission.job_id, "batchId": batch.batch_id, "status": "SUBMITTED"}
    return respond("api.report.submit", result, status=202)


@routes.get("/v1/reports/jobs/{jobId}")
@api("api.report.job.read")
async def read_job(request: web.Request) -> web.Response:
    who = principal(request)
    hub = hub_of(request)
    job = await hub.jobs.get(request.match_info["jobId"])
    if job is None:
        raise HubError(404, "JOB_NOT_FOUND", "There is no report job with this id.")
    if not who.is_support:
        if job["requestedBy"] != who.user_id:
            raise HubError(403, "NOT_YOUR_JOB", "This report job was requested by someone else.")
        await batch_for(hub.source, who, job["batchId"])
    return respond("api.report.job.read", await hub.jobs.view(job))


@routes.get("/v1/reports/jobs")
@api("api.report.job.list")
async def list_jobs(request: web.Request) -> web.Response:
    who = principal(request)
    hub = hub_of(request)
    batch_id = request.query.get("batchId") or None
    if batch_id is not None:
        await batch_for(hub.source, who, batch_id)
    allowed: dict[str, bool] = {}
    jobs = []
    for job in await hub.jobs.recent(who.user_id, batch_id):
        if job["batchId"] not in allowed:
            batch = await hub.source.batch(job["batchId"])
            allowed[job["batchId"]] = batch is not None and batch.allows(who.user_id)
        if allowed[job["batchId"]]:
            jobs.append(await hub.jobs.view(job))
    return respond("api.report.job.list", {"jobs": jobs})
