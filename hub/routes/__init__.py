"""URL map of the hub; each module holds the handlers of one part of the contract."""

from __future__ import annotations

from aiohttp import web

from hub.routes import batches, exhaust, files, health, notifications, openapi, page, reports, support, telemetry


def setup_routes(app: web.Application) -> None:
    for module in (batches, reports, exhaust, notifications, files, support, telemetry, health, openapi, page):
        app.router.add_routes(module.routes)
