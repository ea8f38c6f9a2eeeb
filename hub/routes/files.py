"""Report files from local storage, behind a signed link bound to one job that expires."""

from __future__ import annotations

from aiohttp import web

from hub.app import api, hub_of
from hub.envelope import HubError
from hub.reports import SUCCESS, storage_key
from hub.storage import content_disposition, link_is_valid

routes = web.RouteTableDef()


@routes.get("/files/{jobId}")
@api("api.report.file")
async def download(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    job = await hub.jobs.get(request.match_info["jobId"])
    expires, signature = request.query.get("expires", ""), request.query.get("sig", "")
    if job is None or job["status"] != SUCCESS or hub.storage.local_root is None:
        raise HubError(404, "FILE_NOT_FOUND", "This report file does not exist (any more).")
    key = storage_key(job)
    if not link_is_valid(hub.settings.link_secret, job["jobId"], key, expires, signature):
        raise HubError(403, "LINK_EXPIRED", "This download link is invalid or has expired; ask for a fresh one.")
    path = hub.storage.local_path(key)
    if not path.is_file():
        raise HubError(404, "FILE_NOT_FOUND", "This report file does not exist (any more).")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": content_disposition(job["fileName"]),
            "Cache-Control": "private, no-store",
        },
    )
