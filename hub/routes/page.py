"""The course dashboard page and the support console: the static files of `web/` (packaged as `hub.web`),
no build step."""

from __future__ import annotations

from importlib.resources import as_file, files

from aiohttp import web

from hub.i18n import LANGUAGES, chosen, page_in

routes = web.RouteTableDef()
# Installed from a wheel or in place (`pip install -e`), the files are on disk either way.
with as_file(files("hub.web")) as WEB_DIR:
    pass
# The page's files, by name, known at start: a requested name is looked up here, never on the disk, so
# no name (one too long for the file system made aiohttp's static route answer 500) reaches the disk.
PAGE_FILES = {path.name: path for path in WEB_DIR.iterdir() if path.suffix in (".html", ".js", ".css")}


# The page in each language, its labels filled in from the catalogue once, at start.
PAGES = {lang: page_in((WEB_DIR / "index.html").read_text("utf-8"), lang) for lang in LANGUAGES}


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    """In the mentor's language: `?lang=`, else `Accept-Language`, else English."""
    lang = chosen(request.query.get("lang"), request.headers.get("Accept-Language"))
    return web.Response(
        text=PAGES[lang],
        content_type="text/html",
        headers={"Cache-Control": "no-cache", "Content-Language": lang, "Vary": "Accept-Language"},
    )


@routes.get("/support")
async def support_console(request: web.Request) -> web.FileResponse:
    """Support staff's console: signs in like the dashboard, and works through the `/v1/support` calls."""
    return web.FileResponse(WEB_DIR / "support.html", headers={"Cache-Control": "no-cache"})


@routes.get("/web/{filename}")
async def page_file(request: web.Request) -> web.FileResponse:
    path = PAGE_FILES.get(request.match_info["filename"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path)
