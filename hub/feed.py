"""One client's ordered view of a user's events, whatever carries it (WebSocket, Server-Sent Events or
polling): the backlog from the event log first, then live frames from the bus, each id at most once and
in order, and `resync` when the client's resume point is older than what the log keeps.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from hub.bus import CLOSING, Subscriber
from hub.events import EventLog, frame_id, parse_id
from hub.identity import Principal
from hub.services import Hub

PAGE = 500
RESYNC = '{"type":"resync"}'
# What a quiet connection gets every HEARTBEAT_INTERVAL, so proxies keep it open and a client can tell a
# live connection from one a network change killed without a word (WebSocket pings are invisible to it).
HEARTBEAT = '{"type":"heartbeat"}'


class Feed:
    def __init__(self, hub: Hub, who: Principal) -> None:
        self._hub = hub
        self._user_id = who.user_id
        self._expires = who.expires
        self._subscriber: Subscriber | None = None
        self.last = "0-0"

    async def start(self, after: str | None) -> list[str]:
        """Subscribes, then reads the log from the resume point: a frame published in between is in the
        backlog, the queue, or both (and then sent once)."""
        log = self._hub.events
        if after is not None and not await log.missed_too_much(self._user_id, after):
            self.last = after
            self._subscriber = self._hub.bus.subscribe(self._user_id)
            return await self._catch_up()
        # No resume point (or one too old): start from the log's end as it is *before* subscribing.
        self.last = await log.tail(self._user_id)
        self._subscriber = self._hub.bus.subscribe(self._user_id)
        return ([RESYNC] if after is not None else []) + await self._catch_up()

    async def _catch_up(self) -> list[str]:
        frames: list[str] = []
        while True:
            page = await self._hub.events.after(self._user_id, self.last, PAGE)
            frames.extend(page)
            if page:
                self.last = frame_id(page[-1])
            if len(page) < PAGE:
                return frames

    @property
    def expired(self) -> bool:
        """The token the connection was opened with has expired: the events stop, as every call would."""
        return time.time() >= self._expires

    @property
    def open(self) -> bool:
        """Neither has the token expired nor is the hub going away."""
        return not (self.expired or self.closing)

    @property
    def closing(self) -> bool:
        """The hub is going away (a deploy): the client should resume on another instance."""
        return self._subscriber is not None and self._subscriber.closing

    async def next(self) -> list[str]:
        """The next frames to send: the heartbeat when its time (or the token's life) passes quietly, none
        when what came was not news (a frame already sent, the bus reconnecting or going away)."""
        wait = max(0.0, min(self._hub.settings.heartbeat_seconds, self._expires - time.time()))
        assert self._subscriber is not None
        try:
            # Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that lands just as a frame
            # arrives, and the pump then sits out a whole heartbeat after its client has left.
            async with asyncio.timeout(wait):
                frame = await self._subscriber.queue.get()
        except TimeoutError:
            return [HEARTBEAT]
        if frame is None:
            return await self._catch_up()
        if frame == CLOSING:
            return []
        event_id = frame_id(frame)
        if parse_id(event_id) <= parse_id(self.last):
            return []
        self.last = event_id
        return [frame]

    def __enter__(self) -> Feed:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._subscriber is not None:
            self._hub.bus.unsubscribe(self._subscriber)


@dataclass(frozen=True)
class Page:
    frames: list[str]
    resync: bool
    last_event_id: str


async def read_page(log: EventLog, user_id: str, after: str | None, limit: int) -> Page:
    """What a polling client gets: events after its resume point, or the latest ones and `resync` when
    that point is too old (or it has none)."""
    resync = after is not None and await log.missed_too_much(user_id, after)
    if after is not None and not resync:
        frames = await log.after(user_id, after, limit)
    else:
        frames = await log.latest(user_id, limit)
    last = frame_id(frames[-1]) if frames else after or await log.tail(user_id)
    return Page(frames=frames, resync=resync, last_event_id=last)
