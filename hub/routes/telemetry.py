"""Telemetry from the page: each download click arrives here as a Sunbird v3 INTERACT event."""

from __future__ import annotations

from aiohttp import web

from hub import errors, metrics
from hub.envelope import json_object
from hub.identity import user_id_of
from hub.request import Result, api, budgeted, hub_of
from hub.telemetry import check_batch

routes = web.RouteTableDef()


@routes.post("/v1/telemetry")
@api("api.telemetry")
async def telemetry(request: web.Request) -> Result:
    who = await budgeted(request, "telemetry")
    with metrics.refusals(metrics.TELEMETRY_REFUSED):
        events = check_batch(await json_object(request))
        strangers = [i for i, event in enumerate(events) if user_id_of(str(event["actor"]["id"])) != who.user_id]
        if strangers:
            raise errors.NOT_YOUR_TELEMETRY(index=strangers[0])
        await hub_of(request).telemetry.keep(events)
    metrics.TELEMETRY_ACCEPTED.inc(len(events))
    return {"accepted": len(events)}
