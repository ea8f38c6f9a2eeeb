"""Report files from local storage, behind a signed link bound to one job that expires."""

from __future__ import annotations

from aiohttp import web

from hub import errors, ids
from hub.job import Status
from hub.request import api, hub_of
from hub.storage import content_disposition, content_type

routes = web.RouteTableDef()


@routes.get("/files/{jobId}")
@api("api.report.file")
async def download(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    job = await hub.jobs.get(ids.job_id(request.match_info["jobId"]))
    if job is None or job.status != Status.SUCCESS or job.key is None or hub.storage.local_root is None:
        raise errors.FILE_NOT_FOUND()
    if hub.storage.expired(job):
        raise errors.REPORT_EXPIRED()
    expires, signature = request.query.get("expires", ""), request.query.get("sig", "")
    if not hub.storage.link_is_valid(job.job_id, job.key, expires, signature):
        raise errors.LINK_EXPIRED()
    path = hub.storage.local_path(job.key)
    if not path.is_file():
        raise errors.FILE_NOT_FOUND()
    return web.FileResponse(
        path,
        headers={
            "Content-Type": content_type(job.file_name),
            "Content-Disposition": content_disposition(job.file_name),
            "Cache-Control": "private, no-store",
        },
    )
