"""A user's events over WebSocket, Server-Sent Events or polling, resumable from the last id seen.

All three transports read one `Feed`: the backlog from the event log first, then live frames from the
bus, each id at most once and in order. Clients only listen; the hub never waits on a slow one for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlparse

import orjson
from aiohttp import web

from hub.app import Hub, api, budgeted, hub_of, listed_origin, principal
from hub.bus import Subscriber
from hub.envelope import HubError, respond
from hub.events import EVENT_ID, frame_id, parse_id
from hub.identity import TICKET_TTL, Principal

routes = web.RouteTableDef()
HEARTBEAT = 20.0
TOKEN_EXPIRED = 4001  # a WebSocket close code of the application range: sign in again, then reconnect
SEND_TIMEOUT = 10.0
PAGE = 500
POLL_LIMIT = 100
RESYNC = '{"type":"resync"}'
# Redis stream ids are two 64-bit numbers; the largest cannot be resumed after.
LARGEST_ID_PART = 2**64 - 1


class Feed:
    """One client's ordered view of a user's events."""

    def __init__(self, hub: Hub, who: Principal) -> None:
        self._hub = hub
        self._user_id = who.user_id
        self._expires = who.expires
        self._subscriber: Subscriber | None = None
        self.last = "0-0"

    async def start(self, after: str | None) -> list[str]:
        """Subscribes, then reads the log from the resume point: a frame published in between is in the
        backlog, the queue, or both (and then sent once)."""
        if after is not None and not await self._hub.log.missed_too_much(self._user_id, after):
            self.last = after
            self._subscriber = self._hub.bus.subscribe(self._user_id)
            return await self._catch_up()
        # No resume point (or one too old): start from the log's end as it is *before* subscribing.
        self.last = await self._hub.log.tail(self._user_id)
        self._subscriber = self._hub.bus.subscribe(self._user_id)
        return ([RESYNC] if after is not None else []) + await self._catch_up()

    async def _catch_up(self) -> list[str]:
        frames: list[str] = []
        while True:
            page = await self._hub.log.after(self._user_id, self.last, PAGE)
            frames.extend(page)
            if page:
                self.last = frame_id(page[-1])
            if len(page) < PAGE:
                return frames

    @property
    def expired(self) -> bool:
        """The token the socket was opened with has expired: the events stop, as every call would."""
        return time.time() >= self._expires

    async def next(self) -> list[str]:
        """The next frames to send, or none when a heartbeat's time (or the token's life) passes quietly."""
        wait = max(0.0, min(HEARTBEAT, self._expires - time.time()))
        assert self._subscriber is not None
        try:
            # Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that lands just as a frame
            # arrives, and the pump then sits out a whole HEARTBEAT after its client has left.
            async with asyncio.timeout(wait):
                frame = await self._subscriber.queue.get()
        except TimeoutError:
            return []
        if frame is None:
            return await self._catch_up()
        event_id = frame_id(frame)
        if parse_id(event_id) <= parse_id(self.last):
            return []
        self.last = event_id
        return [frame]

    def __enter__(self) -> Feed:
        self._hub.metrics.sockets.inc()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._subscriber is not None:
            self._hub.bus.unsubscribe(self._subscriber)
        self._hub.metrics.sockets.dec()


async def socket_principal(request: web.Request) -> Principal:
    ticket = request.query.get("ticket")
    if ticket is not None:
        return await hub_of(request).tickets.redeem(ticket)
    return principal(request)


def resume_point(value: str | None) -> str | None:
    if value and (not EVENT_ID.match(value) or max(parse_id(value)) >= LARGEST_ID_PART):
        raise HubError(400, "INVALID_EVENT_ID", "The event id must look like '1732435200000-0'.")
    return value or None


def check_origin(request: web.Request) -> None:
    """Browsers always send Origin on a WebSocket; a page on another site must not ride the ticket."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    settings = hub_of(request).settings
    same_host = urlparse(origin).netloc == request.host
    if not (listed_origin(settings, origin) or (not settings.allowed_origins and same_host)):
        raise HubError(403, "ORIGIN_NOT_ALLOWED", f"WebSocket connections from {origin} are not allowed.")


@routes.post("/v1/notifications/ticket")
@api("api.notifications.ticket")
async def ticket(request: web.Request) -> web.Response:
    who = await budgeted(request, "ticket")
    hub = hub_of(request)
    issued = await hub.tickets.issue(who)
    return respond("api.notifications.ticket", {"ticket": issued, "expiresIn": TICKET_TTL})


@routes.get("/v1/notifications/ws")
@api("api.notifications.ws")
async def websocket(request: web.Request) -> web.StreamResponse:
    check_origin(request)
    after = resume_point(request.query.get("lastEventId"))
    who = await socket_principal(request)
    hub = hub_of(request)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=4096)
    with Feed(hub, who) as feed:
        backlog = await feed.start(after)  # subscribed before the socket opens: no event slips between
        await ws.prepare(request)
        await _pump_websocket(request, ws, feed, backlog, hub)
    return ws


def drop(request: web.Request) -> None:
    """Lets go of a connection at once. A client whose buffers are full can take neither a close frame nor
    the end of a response: `ws.close()` and finishing a stream wait for it to drain, forever, and so does
    `transport.close()`. The client resumes later from the last id it really received."""
    if request.transport is not None:
        request.transport.abort()


async def _pump_websocket(
    request: web.Request, ws: web.WebSocketResponse, feed: Feed, backlog: list[str], hub: Hub
) -> None:
    async def pump() -> None:
        frames = backlog
        while not ws.closed and not feed.expired:
            for frame in frames:
                try:
                    async with asyncio.timeout(SEND_TIMEOUT):
                        await ws.send_str(frame)
                except TimeoutError:
                    drop(request)  # a client that never reads cannot hold us
                    return
                hub.metrics.frames.labels("ws").inc()
            frames = await feed.next()
        if feed.expired:
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await ws.close(code=TOKEN_EXPIRED, message=b"token expired")
            except TimeoutError:
                drop(request)

    sender = asyncio.create_task(pump())
    sender.add_done_callback(lambda task: task.cancelled() or task.exception() is None or drop(request))
    try:
        async for _ in ws:
            pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


@routes.get("/v1/notifications/stream")
@api("api.notifications.stream")
async def server_sent_events(request: web.Request) -> web.StreamResponse:
    check_origin(request)
    after = resume_point(request.query.get("lastEventId") or request.headers.get("Last-Event-ID"))
    who = await socket_principal(request)
    hub = hub_of(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    with Feed(hub, who) as feed, contextlib.suppress(ConnectionResetError):
        frames = await feed.start(after)
        await response.prepare(request)
        await response.write(b"retry: 3000\n\n")
        while not feed.expired:
            chunk = b"".join(
                (b"data: " if frame == RESYNC else b"id: " + frame_id(frame).encode() + b"\ndata: ")
                + frame.encode()
                + b"\n\n"
                for frame in frames
            )
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await response.write(chunk or b": ping\n\n")
            except TimeoutError:
                drop(request)
                break
            hub.metrics.frames.labels("sse").inc(len(frames))
            frames = await feed.next()
    return response


@routes.get("/v1/notifications")
@api("api.notifications.read")
async def poll(request: web.Request) -> web.Response:
    who = principal(request)
    hub = hub_of(request)
    after = resume_point(request.query.get("after"))
    resync = bool(after) and await hub.log.missed_too_much(who.user_id, after)
    if after and not resync:
        frames = await hub.log.after(who.user_id, after, POLL_LIMIT)
    else:
        frames = await hub.log.latest(who.user_id, POLL_LIMIT)
    result = {
        "events": [orjson.loads(frame) for frame in frames],
        "resync": resync,
        "lastEventId": frame_id(frames[-1]) if frames else after or await hub.log.tail(who.user_id),
    }
    return respond("api.notifications.read", result)
