"""Telemetry from the page: each download click arrives here as a Sunbird v3 INTERACT event."""

from __future__ import annotations

from aiohttp import web

from hub.app import api, hub_of, principal
from hub.envelope import json_object, respond
from hub.telemetry import check_batch

routes = web.RouteTableDef()


@routes.post("/v1/telemetry")
@api("api.telemetry")
async def telemetry(request: web.Request) -> web.Response:
    principal(request)
    events = check_batch(await json_object(request))
    hub = hub_of(request)
    await hub.telemetry.keep(events)
    hub.metrics.telemetry.inc(len(events))
    return respond("api.telemetry", {"accepted": len(events)})
