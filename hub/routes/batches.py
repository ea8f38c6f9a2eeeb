"""What a mentor sees of their batches: the list, and one batch's dashboard figures."""

from __future__ import annotations

from aiohttp import web

from hub.access import batch_for
from hub.request import Result, api, budgeted, hub_of
from hub.routes.views import job_view

routes = web.RouteTableDef()


@routes.get("/v1/mentor/batches")
@api("api.mentor.batches")
async def mentor_batches(request: web.Request) -> Result:
    who = await budgeted(request, "read")
    return {"batches": await hub_of(request).source.mentor_batches(who.user_id)}


@routes.get("/v1/batches/{batchId}/dashboard")
@api("api.batch.dashboard")
async def dashboard(request: web.Request) -> Result:
    who = await budgeted(request, "dashboard")
    hub = hub_of(request)
    batch = await batch_for(hub.source, who, request.match_info["batchId"])
    figures = await hub.source.dashboard(batch.batch_id)
    latest = await hub.jobs.recent(who.user_id, batch.batch_id, limit=1)
    return {
        "batchId": batch.batch_id,
        "courseId": batch.course_id,
        "courseName": batch.course_name,
        "name": batch.name,
        **figures,
        "latestJob": await job_view(latest[0], hub.storage) if latest else None,
    }
