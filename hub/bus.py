"""Fan-out: one Redis pub/sub connection per hub process, routing each user's events to their sockets.

A socket registers before it reads its backlog, so nothing published in between is lost; duplicates
are dropped by id in the socket's pump. A subscriber's queue is bounded: when it overflows, or when the
pub/sub connection has been down, the subscriber is told to catch up from the event log instead of
being handed an unbounded pile of frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError, RedisError

from hub import keys, metrics, tasks

log = logging.getLogger(__name__)
QUEUE_SIZE = 256
# A quiet pub/sub connection is pinged this often, and given up on when nothing, not even a pong, came back
# for this long: a dead link is found within ~10 s.
PING_EVERY_SECONDS = 3.0
SILENT_FOR_SECONDS = 8.0
# What a subscriber's queue holds when the hub is going away.
CLOSING = "closing"


class Subscriber:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        # None in the queue means "you may have missed frames: catch up from the log".
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.closing = False

    def offer(self, frame: str) -> None:
        if self.closing:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            metrics.SUBSCRIBERS_BEHIND.inc()
            self.fall_behind()

    def fall_behind(self) -> None:
        """Whatever is queued may be incomplete: drop it and read the log instead."""
        self._replace_queue_with(None)

    def close(self) -> None:
        self._replace_queue_with(CLOSING)
        self.closing = True

    def _replace_queue_with(self, item: str | None) -> None:
        if self.closing:
            return
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(item)


class _Subscription(PubSub):
    """redis-py reconnects a pub/sub connection by itself and subscribes again, silently: whatever was
    published in between is missed. Each reconnection is reported, so subscribers catch up from the log."""

    def __init__(self, redis: Redis, on_reconnect: Callable[[], None]) -> None:
        super().__init__(redis.connection_pool, ignore_subscribe_messages=True)
        self._on_reconnect = on_reconnect

    async def on_connect(self, connection: Connection) -> None:
        await super().on_connect(connection)
        self._on_reconnect()


class Bus:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._subscribers: dict[str, set[Subscriber]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def subscribe(self, user_id: str) -> Subscriber:
        subscriber = Subscriber(user_id)
        self._subscribers[user_id].add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        group = self._subscribers.get(subscriber.user_id)
        if group is not None:
            group.discard(subscriber)
            if not group:
                del self._subscribers[subscriber.user_id]

    def _everyone_falls_behind(self) -> None:
        for group in self._subscribers.values():
            for subscriber in group:
                subscriber.fall_behind()

    def close_all(self) -> None:
        """Tells every subscriber the hub is going away (a deploy): their clients resume elsewhere."""
        for group in self._subscribers.values():
            for subscriber in group:
                subscriber.close()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hub-bus")
        await asyncio.wait_for(self.connected.wait(), timeout=10)

    async def stop(self) -> None:
        """Stops listening and closes the bus's own connection to Redis."""
        if self._task:
            await tasks.stop(self._task)
        await self._redis.aclose()

    def _route(self, channel: bytes, frame: bytes) -> None:
        user_id = keys.user_of_channel(channel.decode())
        text = frame.decode()
        for subscriber in self._subscribers.get(user_id, ()):
            subscriber.offer(text)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            pubsub = _Subscription(self._redis, self._everyone_falls_behind)
            try:
                await pubsub.psubscribe(keys.USER_CHANNEL_PATTERN)
                if not self.connected.is_set():
                    log.info("pub/sub connected")
                self.connected.set()
                delay = 0.1
                # Anything published while we were away is only in the log now.
                self._everyone_falls_behind()
                await self._listen(pubsub)
            except (RedisError, OSError) as exc:
                if self.connected.is_set():
                    log.warning("pub/sub connection lost (%s); reconnecting", exc)
                self.connected.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _listen(self, pubsub: PubSub) -> None:
        """Routes messages until the connection fails, or goes silent: a proxy or NAT that drops a
        connection without a reset leaves it open and mute, so a ping whose answer never comes counts as
        a failure too."""
        heard = time.monotonic()
        while True:
            message = await pubsub.get_message(timeout=PING_EVERY_SECONDS)
            now = time.monotonic()
            if message is not None:
                heard = now
                if message["type"] == "pmessage":
                    self._route(message["channel"], message["data"])
            elif now - heard > SILENT_FOR_SECONDS:
                raise ConnectionError(f"no answer to a ping in {SILENT_FOR_SECONDS:.0f}s")
            else:
                await pubsub.ping()
