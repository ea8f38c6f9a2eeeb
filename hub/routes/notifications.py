"""A user's events over WebSocket, Server-Sent Events or polling, resumable from the last id seen.

Each transport is a thin layer over one `Feed`. Clients only listen; the hub never waits on a slow one
for longer than `SEND_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

import orjson
from aiohttp import web

from hub import errors, logs, metrics, tasks
from hub.events import frame_id, parse_id
from hub.feed import HEARTBEAT, RESYNC, Feed, read_page
from hub.i18n import chosen, localize
from hub.identity import TICKET_TTL_SECONDS, Principal
from hub.ids import EVENT_ID
from hub.request import Result, api, budgeted, check_socket_origin, hub_of

routes = web.RouteTableDef()
# WebSocket close codes. 1001 (going away, RFC 6455): this hub instance is shutting down; reconnect, with
# the last event id, to any other. 4001 (the application range, 4000-4999): the token expired; sign in
# again, then reconnect.
GOING_AWAY = 1001
TOKEN_EXPIRED = 4001
POLL_LIMIT = 100
# Redis stream ids are two 64-bit numbers; the largest cannot be resumed after.
LARGEST_ID_PART = 2**64 - 1


def language(request: web.Request, default: str | None = None) -> str:
    """The reader's language: `?lang=`, else the ticket's (`default`), else `Accept-Language`, else English."""
    return chosen(request.query.get("lang") or default, request.headers.get("Accept-Language"))


async def socket_caller(request: web.Request) -> tuple[Principal, str]:
    """Browsers cannot set headers on a socket: they bring a single-use ticket; other clients a token.
    While the hub drains, no new socket or stream is opened: the client connects to another instance."""
    if hub_of(request).draining.is_set():
        raise errors.SHUTTING_DOWN()
    ticket = request.query.get("ticket")
    if ticket is not None:
        who, lang = await hub_of(request).tickets.redeem(ticket)
        logs.bind(userId=who.user_id)
        return who, language(request, lang)
    return await budgeted(request, "read"), language(request)


def resume_point(value: str | None) -> str | None:
    if value and (not EVENT_ID.fullmatch(value) or max(parse_id(value)) >= LARGEST_ID_PART):
        raise errors.INVALID_EVENT_ID()
    return value or None


def drop(request: web.Request) -> None:
    """Lets go of a connection at once. A client whose buffers are full can take neither a close frame nor
    the end of a response: `ws.close()` and finishing a stream wait for it to drain, forever, and so does
    `transport.close()`. The client resumes later from the last id it really received."""
    if request.transport is not None:
        request.transport.abort()


async def sent(request: web.Request, sending: Awaitable[object]) -> bool:
    """Whether the client took what was sent within SEND_TIMEOUT; one that did not is dropped."""
    try:
        async with asyncio.timeout(hub_of(request).settings.send_timeout_seconds):
            await sending
        return True
    except TimeoutError:
        metrics.SLOW_READERS_DROPPED.inc()
        drop(request)
        return False


@routes.post("/v1/notifications/ticket")
@api("api.notifications.ticket")
async def ticket(request: web.Request) -> Result:
    who = await budgeted(request, "ticket")
    issued = await hub_of(request).tickets.issue(who, language(request))
    return {"ticket": issued, "expiresIn": TICKET_TTL_SECONDS, "heartbeat": hub_of(request).settings.heartbeat_seconds}


@routes.get("/v1/notifications/ws")
@api("api.notifications.ws")
async def websocket(request: web.Request) -> web.StreamResponse:
    check_socket_origin(request)
    after = resume_point(request.query.get("lastEventId"))
    who, lang = await socket_caller(request)
    ws = web.WebSocketResponse(heartbeat=hub_of(request).settings.heartbeat_seconds, max_msg_size=4096)
    async with hub_of(request).connections.hold(who.user_id):
        with Feed(hub_of(request), who) as feed, metrics.OPEN_CONNECTIONS.labels("ws").track_inprogress():
            backlog = await feed.start(after)  # subscribed before the socket opens: no event slips between
            await ws.prepare(request)
            await _pump_websocket(request, ws, feed, backlog, lang)
    return ws


async def _pump_websocket(
    request: web.Request, ws: web.WebSocketResponse, feed: Feed, backlog: list[str], lang: str
) -> None:
    frames_sent = metrics.EVENTS_DELIVERED.labels("ws")
    deliveries = hub_of(request).support.deliveries

    async def pump() -> None:
        frames = backlog
        while not ws.closed and feed.open:
            for frame in frames:
                if not await sent(request, ws.send_str(localize(frame, lang))):
                    return
                frames_sent.inc(frame != HEARTBEAT)
            await deliveries.count(frames)
            frames = await feed.next()
        if feed.closing:
            await sent(request, ws.close(code=GOING_AWAY, message=b"server going away"))
        elif feed.expired:
            await sent(request, ws.close(code=TOKEN_EXPIRED, message=b"token expired"))

    sender = asyncio.create_task(pump())
    sender.add_done_callback(lambda task: task.cancelled() or task.exception() is None or drop(request))
    try:
        async for _ in ws:
            pass
    finally:
        with contextlib.suppress(Exception):
            await tasks.stop(sender)


def _sse_chunk(frames: list[str], lang: str) -> bytes:
    """Events with their `id:` line; `resync` and the heartbeat have no id, and are `data:` lines too
    (JavaScript never sees an SSE comment)."""
    return b"".join(
        (b"data: " if frame in (RESYNC, HEARTBEAT) else b"id: " + frame_id(frame).encode() + b"\ndata: ")
        + localize(frame, lang).encode()
        + b"\n\n"
        for frame in frames
    )


@routes.get("/v1/notifications/stream")
@api("api.notifications.stream")
async def server_sent_events(request: web.Request) -> web.StreamResponse:
    check_socket_origin(request)
    after = resume_point(request.query.get("lastEventId") or request.headers.get("Last-Event-ID"))
    who, lang = await socket_caller(request)
    frames_sent = metrics.EVENTS_DELIVERED.labels("sse")
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    async with hub_of(request).connections.hold(who.user_id):
        with (
            Feed(hub_of(request), who) as feed,
            metrics.OPEN_CONNECTIONS.labels("sse").track_inprogress(),
            contextlib.suppress(ConnectionResetError),
        ):
            frames = await feed.start(after)
            await response.prepare(request)
            await response.write(b"retry: 3000\n\n")
            while feed.open:
                if not await sent(request, response.write(_sse_chunk(frames, lang) or b": ping\n\n")):
                    break
                frames_sent.inc(len(frames) - frames.count(HEARTBEAT))
                await hub_of(request).support.deliveries.count(frames)
                frames = await feed.next()
    return response


@routes.get("/v1/notifications")
@api("api.notifications.read")
async def poll(request: web.Request) -> Result:
    who = await budgeted(request, "read")
    page = await read_page(hub_of(request).events, who.user_id, resume_point(request.query.get("after")), POLL_LIMIT)
    metrics.EVENTS_DELIVERED.labels("poll").inc(len(page.frames))
    await hub_of(request).support.deliveries.count(page.frames)
    return {
        "events": [orjson.loads(localize(frame, language(request))) for frame in page.frames],
        "resync": page.resync,
        "lastEventId": page.last_event_id,
    }
