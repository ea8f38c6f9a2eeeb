"""Support staff: a job's whole timeline, and pushing its last notification to the mentor again."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from hub import errors, ids
from hub.envelope import now_iso
from hub.job import Job
from hub.request import Result, api, budgeted, hub_of

routes = web.RouteTableDef()
NOT_USER_FACING = {"report.progress"}
ENDINGS = {"report.completed", "report.failed"}


def _news(job: Job, event: dict[str, Any]) -> bool:
    """What replay may resend: once the job has ended, only how it ended; before, any user-facing event."""
    if event.get("replayed"):
        return False
    return event["type"] in ENDINGS if job.status.ended else event["type"] not in NOT_USER_FACING


async def _timeline(request: web.Request) -> tuple[Job, list[dict[str, Any]]]:
    if not (await budgeted(request, "read")).is_support:
        raise errors.NOT_SUPPORT()
    hub = hub_of(request)
    job = await hub.jobs.get(ids.job_id(request.match_info["jobId"]))
    if job is None:
        raise errors.JOB_NOT_FOUND()
    return job, [orjson.loads(frame) for frame in await hub.events.job_timeline(job.job_id)]


@routes.get("/v1/support/jobs/{jobId}/events")
@api("api.support.job.events")
async def job_events(request: web.Request) -> Result:
    job, timeline = await _timeline(request)
    return {"jobId": job.job_id, "events": timeline}


@routes.post("/v1/support/jobs/{jobId}/replay")
@api("api.support.job.replay")
async def replay(request: web.Request) -> Result:
    job, timeline = await _timeline(request)
    facing = [event for event in timeline if _news(job, event)]
    if not facing:
        raise errors.NOTHING_TO_REPLAY()
    hub = hub_of(request)
    event = {key: value for key, value in facing[-1].items() if key != "id"}
    event.update(ts=now_iso(), replayed=True)
    if event["type"] == "report.completed":  # the stored link has expired by now: mint a fresh one
        link = await hub.storage.report_link(job)
        if link is None:  # the report was deleted: a link would lead nowhere
            raise errors.REPORT_EXPIRED()
        event["downloadUrl"], event["expiresAt"] = link
    event_id = await hub.events.emit(job.requested_by, job.job_id, orjson.dumps(event))
    return {"jobId": job.job_id, "eventId": event_id, "type": event["type"]}
