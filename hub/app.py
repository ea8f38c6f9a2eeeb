"""The aiohttp application: middlewares, routes, and the services' life from start to shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from hub import tasks
from hub.config import Settings
from hub.metrics import exposition
from hub.metrics.http import measured
from hub.middlewares import (
    MAX_BODY_BYTES,
    cross_origin,
    envelope_errors,
    in_flight,
    log_context,
    security_headers,
)
from hub.request import HUB
from hub.routes import setup_routes
from hub.routes.health import scrape
from hub.services import open_hub
from hub.sweeper import Sweeper


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[log_context, measured, in_flight, cross_origin(settings), envelope_errors],
    )
    app.on_response_prepare.append(security_headers(settings))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        hub = await open_hub(settings)
        app[HUB] = hub
        port = settings.metrics_port
        metrics = await exposition.serve(settings.host, port, lambda: scrape(hub)) if port else None
        await hub.bus.start()
        await hub.telemetry.start()
        sweeping = asyncio.create_task(Sweeper(hub.jobs, hub.redis, settings, hub.source).run(), name="hub-sweeper")
        yield
        await tasks.stop(sweeping)
        await hub.telemetry.stop()
        await hub.bus.stop()
        await hub.close()
        await hub.redis.aclose()
        if metrics is not None:
            await metrics.cleanup()

    app.cleanup_ctx.append(lifecycle)
    setup_routes(app)
    return app
