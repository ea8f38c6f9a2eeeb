"""The OpenAPI 3 document of every route, kept as a file in the package and served as it is: clients
generate their code from it, and the tests hold the routes and their answers to it."""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

routes = web.RouteTableDef()
DOCUMENT = files("hub").joinpath("openapi.json").read_bytes()


@routes.get("/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=DOCUMENT, content_type="application/json")
