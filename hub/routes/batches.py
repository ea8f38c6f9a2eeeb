"""What a mentor sees of their batches: the list, and one batch's dashboard figures."""

from __future__ import annotations

from aiohttp import web

from hub.app import api, hub_of, principal
from hub.envelope import HubError, respond
from hub.identity import Principal
from hub.source import Batch

routes = web.RouteTableDef()


async def batch_for(request: web.Request, who: Principal, batch_id: str) -> Batch:
    """The batch, if the caller mentors or created it: checked on the server for every batch-scoped call."""
    batch = await hub_of(request).source.batch(batch_id)
    if batch is None:
        raise HubError(404, "BATCH_NOT_FOUND", f"There is no batch with id '{batch_id}'.")
    if not batch.allows(who.user_id):
        raise HubError(403, "NOT_A_MENTOR", "Only a mentor or the creator of this batch can do this.")
    return batch


@routes.get("/v1/mentor/batches")
@api("api.mentor.batches")
async def mentor_batches(request: web.Request) -> web.Response:
    who = principal(request)
    return respond("api.mentor.batches", {"batches": await hub_of(request).source.mentor_batches(who.user_id)})


@routes.get("/v1/batches/{batchId}/dashboard")
@api("api.batch.dashboard")
async def dashboard(request: web.Request) -> web.Response:
    who = principal(request)
    hub = hub_of(request)
    batch = await batch_for(request, who, request.match_info["batchId"])
    figures = await hub.source.dashboard(batch.batch_id)
    latest = await hub.jobs.recent(who.user_id, batch.batch_id, limit=1)
    result = {
        "batchId": batch.batch_id,
        "courseId": batch.course_id,
        "courseName": batch.course_name,
        "name": batch.name,
        **figures,
        "latestJob": await hub.jobs.view(latest[0]) if latest else None,
    }
    return respond("api.batch.dashboard", result)
