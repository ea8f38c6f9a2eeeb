"""The course dashboard page: static files from `web/`, no build step."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

routes = web.RouteTableDef()
WEB_DIR = Path(__file__).resolve().parents[2] / "web"


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


routes.static("/web", WEB_DIR, append_version=False)
