"""The course dashboard page: the static files of `web/` (packaged as `hub.web`), no build step."""

from __future__ import annotations

from importlib.resources import as_file, files

from aiohttp import web

routes = web.RouteTableDef()
# Installed from a wheel or in place (`pip install -e`), the files are on disk either way.
with as_file(files("hub.web")) as WEB_DIR:
    pass


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


routes.static("/web", WEB_DIR, append_version=False)
