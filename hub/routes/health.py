"""What an operator's probes and Prometheus read."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from hub.readiness import Outcome
from hub.request import hub_of
from hub.services import Hub

routes = web.RouteTableDef()
CHECK_TIMEOUT_SECONDS = 3.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    hub = hub_of(request)
    if hub.draining.is_set():  # at once: the load balancer must stop sending traffic here
        return web.json_response({"status": "unavailable", "server": "shutting down"}, status=503)
    outcome = await hub.readiness.outcome(lambda: check(hub))
    return web.json_response(outcome, status=200 if outcome["status"] == "ok" else 503)


async def check(hub: Hub) -> Outcome:
    checks = {"redis": hub.redis.ping(), "source": hub.source.check(), "storage": hub.storage.check()}
    results: Outcome = {}
    for name, running in checks.items():
        try:
            await asyncio.wait_for(running, CHECK_TIMEOUT_SECONDS)
            results[name] = "ok"
        except Exception as exc:
            results[name] = f"failed: {type(exc).__name__}"
    results["pubsub"] = "ok" if hub.bus.connected.is_set() else "failed: disconnected"
    ready = all(value == "ok" for value in results.values())
    # Not a condition of readiness (a hub serves sockets and links without workers), but what an operator
    # looks at first when reports stay SUBMITTED.
    with contextlib.suppress(Exception):
        results["workersAlive"] = await asyncio.wait_for(hub.jobs.workers_alive(), CHECK_TIMEOUT_SECONDS)
    return {"status": "ok" if ready else "unavailable", **results}


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    hub = hub_of(request)
    with contextlib.suppress(Exception):
        hub.metrics.workers.set(await asyncio.wait_for(hub.jobs.workers_alive(), CHECK_TIMEOUT_SECONDS))
    body = hub.metrics.render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")
