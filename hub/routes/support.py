"""Support staff: a job's whole timeline, and pushing its last notification to the mentor again."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from hub.app import api, hub_of, principal
from hub.envelope import HubError, now_iso, respond
from hub.reports import storage_key

routes = web.RouteTableDef()
NOT_USER_FACING = {"report.progress"}


async def _timeline(request: web.Request) -> tuple[dict[str, str], list[dict[str, Any]]]:
    if not principal(request).is_support:
        raise HubError(403, "NOT_SUPPORT", "Only support staff (role SUPPORT) can read job timelines.")
    hub = hub_of(request)
    job = await hub.jobs.get(request.match_info["jobId"])
    if job is None:
        raise HubError(404, "JOB_NOT_FOUND", "There is no report job with this id.")
    return job, [orjson.loads(frame) for frame in await hub.log.job_timeline(job["jobId"])]


@routes.get("/v1/support/jobs/{jobId}/events")
@api("api.support.job.events")
async def job_events(request: web.Request) -> web.Response:
    job, timeline = await _timeline(request)
    return respond("api.support.job.events", {"jobId": job["jobId"], "events": timeline})


@routes.post("/v1/support/jobs/{jobId}/replay")
@api("api.support.job.replay")
async def replay(request: web.Request) -> web.Response:
    job, timeline = await _timeline(request)
    facing = [event for event in timeline if event["type"] not in NOT_USER_FACING and not event.get("replayed")]
    if not facing:
        raise HubError(404, "NOTHING_TO_REPLAY", "This job has no notification to replay yet.")
    hub = hub_of(request)
    event = {key: value for key, value in facing[-1].items() if key != "id"}
    event.update(ts=now_iso(), replayed=True)
    if event["type"] == "report.completed":  # the stored link has expired by now: mint a fresh one
        event["downloadUrl"], event["expiresAt"] = await hub.storage.download_url(job["jobId"], storage_key(job))
    event_id = await hub.log.emit(job["requestedBy"], job["jobId"], orjson.dumps(event))
    return respond("api.support.job.replay", {"jobId": job["jobId"], "eventId": event_id, "type": event["type"]})
