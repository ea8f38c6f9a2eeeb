"""Support staff: finding a mentor's job, its page (timeline in words, the mentor's devices, what reached
them), pushing its last notification again, running it again for the mentor, and the trail of all that.
No answer here carries a download link: a completed job's replay sends the mentor a fresh one instead.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from hub import errors, ids
from hub.access import batch_for
from hub.envelope import now_iso
from hub.identity import Principal
from hub.job import Job, Status, job_ref
from hub.request import Result, api, budgeted, hub_of
from hub.routes.reports import start_report
from hub.services import Hub
from hub.support import search as job_search
from hub.support.words import Rows, timeline, without_links

routes = web.RouteTableDef()
NOT_USER_FACING = {"report.progress"}
ENDINGS = {"report.completed", "report.failed"}
AUDIT_LIMIT, MAX_AUDIT_LIMIT = 50, 200


def _news(job: Job, event: dict[str, Any]) -> bool:
    """What replay may resend: once the job has ended, only how it ended; before, any user-facing event."""
    if event.get("replayed"):
        return False
    return event["type"] in ENDINGS if job.status.ended else event["type"] not in NOT_USER_FACING


async def _support(request: web.Request, action: str = "read") -> Principal:
    who = await budgeted(request, action)
    if not who.is_support:
        raise errors.NOT_SUPPORT()
    return who


async def _job(request: web.Request, action: str = "read") -> tuple[Principal, Hub, Job]:
    """Support staff, the services, and the job the path names."""
    who = await _support(request, action)
    hub = hub_of(request)
    job = await hub.jobs.get(ids.job_id(request.match_info["jobId"]))
    if job is None:
        raise errors.JOB_NOT_FOUND()
    return who, hub, job


async def _timeline(hub: Hub, job: Job) -> list[dict[str, Any]]:
    return [orjson.loads(frame) for frame in await hub.events.job_timeline(job.job_id)]


def _rows(hub: Hub) -> Rows:
    return Rows(hub.source, hub.storage.expired)


@routes.get("/v1/support/jobs")
@api("api.support.job.search")
async def search_jobs(request: web.Request) -> Result:
    who = await _support(request, "dashboard")
    hub = hub_of(request)
    query = job_search.parse(request.query, hub.settings.report_zone, int(time.time() * 1000),
                             hub.support.index.kept_ms)  # fmt: skip
    found, cursor = await job_search.search(hub.support.index, hub.jobs, query)
    asked = {name: value for name, value in request.query.items() if name not in ("userId", "cursor")}
    await hub.support.audit.record(who.user_id, "search", user_id=query.user_id, **asked)
    rows = _rows(hub)
    result: Result = {"jobs": [await rows.row(job) for job in found], "cursor": cursor}
    if query.user_id:  # the mentor's clicks that made no job, beside those that did
        result["refused"] = await hub.support.refusals.of(query.user_id, query.batch_id, query.low, query.high)
        result["mentorName"] = await hub.source.user_name(query.user_id)
    return result


@routes.get("/v1/support/jobs/{jobId}")
@api("api.support.job.read")
async def job_page(request: web.Request) -> Result:
    who, hub, job = await _job(request)
    events = await _timeline(hub, job)
    devices = await hub.connections.open_now(job.requested_by)
    await hub.support.audit.record(who.user_id, "view", user_id=job.requested_by, job_id=job.job_id)
    return {
        "job": await _rows(hub).row(job),
        "timeline": timeline(events, await hub.support.deliveries.of(job.job_id)),
        "connected": devices > 0,
        "devices": devices,
    }


@routes.get("/v1/support/jobs/{jobId}/events")
@api("api.support.job.events")
async def job_events(request: web.Request) -> Result:
    who, hub, job = await _job(request)
    await hub.support.audit.record(who.user_id, "timeline", user_id=job.requested_by, job_id=job.job_id)
    return {"jobId": job.job_id, "ref": job.ref, "events": [without_links(e) for e in await _timeline(hub, job)]}


@routes.post("/v1/support/jobs/{jobId}/replay")
@api("api.support.job.replay")
async def replay(request: web.Request) -> Result:
    who, hub, job = await _job(request)
    facing = [event for event in await _timeline(hub, job) if _news(job, event)]
    if not facing:
        raise errors.NOTHING_TO_REPLAY()
    event = {key: value for key, value in facing[-1].items() if key != "id"}
    event.update(ts=now_iso(), replayed=True)
    if event["type"] == "report.completed":  # the stored link has expired by now: mint a fresh one
        link = await hub.storage.report_link(job)
        if link is None:  # the report was deleted: a link would lead nowhere
            raise errors.REPORT_EXPIRED()
        event["downloadUrl"], event["expiresAt"] = link
    event_id = await hub.events.emit(job.requested_by, job.job_id, orjson.dumps(event))
    await hub.support.audit.record(who.user_id, "replay", user_id=job.requested_by, job_id=job.job_id,
                                   eventId=event_id, type=event["type"])  # fmt: skip
    return {"jobId": job.job_id, "ref": job.ref, "eventId": event_id, "type": event["type"]}


@routes.post("/v1/support/jobs/{jobId}/rerun")
@api("api.support.job.rerun", status=202)
async def rerun(request: web.Request) -> Result:
    """A new job of the same batch as the mentor, as if they had clicked: the same guard (409 while one runs,
    and the mentor is told), the same events on their open pages. The mentor must still be allowed the batch."""
    who, hub, job = await _job(request, "submit")
    mentor = Principal(user_id=job.requested_by, roles=frozenset(), expires=0)
    batch = await batch_for(hub.source, mentor, job.batch_id)
    new_job_id = await start_report(hub, mentor, batch)
    await hub.support.audit.record(who.user_id, "rerun", user_id=job.requested_by, job_id=job.job_id,
                                   newJobId=new_job_id)  # fmt: skip
    return {
        "jobId": new_job_id,
        "ref": job_ref(new_job_id),
        "batchId": batch.batch_id,
        "userId": job.requested_by,
        "status": Status.SUBMITTED.value,
        "rerunOf": job.job_id,
    }


@routes.get("/v1/support/audit")
@api("api.support.audit")
async def audit(request: web.Request) -> Result:
    await _support(request)
    hub = hub_of(request)
    limit = job_search.page_limit(request.query.get("limit"), AUDIT_LIMIT, MAX_AUDIT_LIMIT)
    cursor = request.query.get("cursor") or None
    if cursor is not None and not ids.EVENT_ID.fullmatch(cursor):
        raise errors.INVALID_SEARCH(detail="'cursor' must be one this list gave out.")
    entries, after = await hub.support.audit.page(limit, cursor)
    return {"entries": entries, "cursor": after}
