"""What an operator's probes and Prometheus read."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from hub.metrics import collect, exposition
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
    results: Outcome = {**await collect.checked(collect.core_checks(hub))}
    results["pubsub"] = "ok" if hub.bus.connected.is_set() else "failed: disconnected"
    ready = all(value == "ok" for value in results.values())
    # Not a condition of readiness (a hub serves sockets and links without workers), but what an operator
    # looks at first when reports stay SUBMITTED.
    with contextlib.suppress(Exception):
        results["workersAlive"] = await asyncio.wait_for(hub.jobs.workers_alive(), CHECK_TIMEOUT_SECONDS)
    return {"status": "ok" if ready else "unavailable", **results}


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Here unless METRICS_PORT is set: then only on that port, never on the public one."""
    hub = hub_of(request)
    if hub.settings.metrics_port is not None:
        raise web.HTTPNotFound()
    return await exposition.render(lambda: scrape(hub))


async def scrape(hub: Hub) -> None:
    """The hub's gauges as a scrape reads them: its dependencies (readiness's last checks) and the
    deployment's queue and workers."""
    collect.dependencies(await hub.readiness.outcome(lambda: check(hub)))
    await collect.deployment(hub.jobs)
