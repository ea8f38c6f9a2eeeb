"""The analytics service's data-exhaust routes, answered by the hub: what the portal's on-demand reports
table and the mobile app already call (`/dataset/v1/request/submit|read|list|search`).

Callers are identified as on every `/v1` route (`hub.gateway`: behind Sunbird's API gateway the user's
token comes in `x-authenticated-user-token`). `X-Channel-ID` names the channel. The body's `requestedBy`
is never trusted: the requester is whoever the token says.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hub import errors
from hub.access import batch_for, visible_batches
from hub.envelope import json_object
from hub.exhaust import (
    LIST,
    LIST_LIMIT,
    READ,
    SEARCH,
    SUBMIT,
    Record,
    Requests,
    envelope,
    failure,
    job_answer,
    limit_of,
    matches,
    parse_submit,
    request_id,
    search_filters,
    today,
    with_jobs,
)
from hub.identity import Principal
from hub.job import Job, Status
from hub.middlewares import problem
from hub.reports import now_ms
from hub.request import budgeted, hub_of
from hub.routes.reports import announce_duplicate, start_report
from hub.services import Hub

routes = web.RouteTableDef()
MAX_CHANNEL_LENGTH = 200


def exhaust_api(api_id: str) -> Callable[[Callable[[web.Request], Awaitable[Any]]], Callable[..., Any]]:
    """The analytics service's envelope for every answer of these routes, errors and crashes included."""

    def decorate(handler: Callable[[web.Request], Awaitable[dict[str, Any]]]) -> Callable[..., Any]:
        @functools.wraps(handler)
        async def answer(request: web.Request) -> web.Response:
            try:
                body = envelope(api_id, await handler(request))
            except (asyncio.CancelledError, ConnectionResetError):
                raise
            except Exception as exc:
                error = problem(request, exc)
                return web.Response(
                    body=failure(api_id, error), status=error.status, content_type="application/json",
                    headers=error.headers,
                )  # fmt: skip
            return web.Response(body=body, content_type="application/json")

        return answer

    return decorate


def channel_of(request: web.Request) -> str:
    """The channel, as Sunbird appends it to tags (`:<channel>`); empty when the gateway sent none."""
    channel = request.headers.get("X-Channel-ID", "").strip()
    if len(channel) > MAX_CHANNEL_LENGTH:
        raise errors.FIELD_TOO_LONG(name="X-Channel-ID", limit=MAX_CHANNEL_LENGTH)
    return channel


async def visible(hub: Hub, who: Principal, records: list[Record]) -> list[tuple[Record, Job]]:
    """The requests (with their jobs) of batches the caller may act on."""
    found = await with_jobs(records, hub.jobs)
    seen = await visible_batches(hub.source, who, (record.batch_id for record, _ in found), hub.settings.report_roles)
    return [(record, job) for record, job in found if record.batch_id in seen]


async def answers(hub: Hub, found: list[tuple[Record, Job]]) -> dict[str, Any]:
    ttl = hub.settings.link_ttl
    return {"count": len(found), "jobs": [await job_answer(record, job, hub.storage, ttl) for record, job in found]}


@routes.post("/dataset/v1/request/submit")
@exhaust_api(SUBMIT)
async def submit(request: web.Request) -> dict[str, Any]:
    """Sunbird's same-day idempotency on top of the hub's guard: the same request on the same day answers
    the job it already made, unless that job FAILED, when it runs again under the same request id."""
    who = await budgeted(request, "submit")
    hub = hub_of(request)
    asked = parse_submit(await json_object(request))
    batch = await batch_for(hub.source, who, asked.batch_id, hub.settings.report_roles)
    channel = channel_of(request)
    rid = request_id(asked, who.user_id, channel, today(hub.settings.report_zone))
    requests = Requests(hub.redis)
    async with requests.claimed(rid):
        earlier = await requests.get(rid)
        job = await hub.jobs.get(earlier.job_id) if earlier else None
        if earlier and job and job.status != Status.FAILED:
            if not job.status.ended:
                await announce_duplicate(hub, who, job.job_id, job.batch_id)
            return await job_answer(earlier, job, hub.storage, hub.settings.link_ttl)
        submitted_at = now_ms()
        job_id = await start_report(hub, who, batch, asked.encryption_key)
        record = Record(
            request_id=rid,
            tag=f"{asked.tag}:{channel}",
            dataset=asked.dataset,
            requested_by=who.user_id,
            channel=channel,
            batch_id=batch.batch_id,
            dataset_config=asked.dataset_config,
            attempts=earlier.attempts + 1 if earlier else 0,  # Sunbird's count starts at 0
            job_id=job_id,
        )
        await requests.save(record, submitted_at, hub.settings.records_kept_seconds)
    job = await hub.jobs.get(job_id)
    if job is None:
        raise errors.NOT_STARTED()
    return await job_answer(record, job, hub.storage, hub.settings.link_ttl)


@routes.get("/dataset/v1/request/read/{tag}")
@exhaust_api(READ)
async def read(request: web.Request) -> dict[str, Any]:
    who = await budgeted(request, "read")
    hub = hub_of(request)
    wanted = request.query.get("requestId", "").strip()
    if not wanted:
        raise errors.EXHAUST_FIELD_EMPTY(name="requestId")
    tag = f"{request.match_info['tag']}:{channel_of(request)}"
    record = await Requests(hub.redis).get(wanted)
    found = await with_jobs([record], hub.jobs) if record and record.tag == tag else []
    if not found:
        raise errors.REQUEST_NOT_FOUND()
    await batch_for(hub.source, who, record.batch_id, hub.settings.report_roles)
    return await job_answer(*found[0], hub.storage, hub.settings.link_ttl)


@routes.get("/dataset/v1/request/list/{tag}")
@exhaust_api(LIST)
async def list_requests(request: web.Request) -> dict[str, Any]:
    who = await budgeted(request, "read")
    hub = hub_of(request)
    limit = limit_of(request.query.get("limit", LIST_LIMIT))
    tag = f"{request.match_info['tag']}:{channel_of(request)}"
    return await answers(hub, await visible(hub, who, await Requests(hub.redis).of_tag(tag, limit)))


@routes.post("/dataset/v1/request/search")
@exhaust_api(SEARCH)
async def search(request: web.Request) -> dict[str, Any]:
    """Requests of one channel (the `channel` filter, or the caller's) that the caller may see."""
    who = await budgeted(request, "dashboard")
    hub = hub_of(request)
    filters, limit = search_filters(await json_object(request))
    own_channel = channel_of(request)  # checked even when the filter names another
    channel = filters["channel"] if isinstance(filters.get("channel"), str) else own_channel
    records, zone = await Requests(hub.redis).of_channel(channel), hub.settings.report_zone
    found = [(record, job) for record, job in await visible(hub, who, records) if matches(record, job, filters, zone)]
    return {**await answers(hub, found[:limit]), "count": len(found)}
