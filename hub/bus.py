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
from collections import defaultdict

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub import keys

log = logging.getLogger(__name__)
QUEUE_SIZE = 256


class Subscriber:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        # None in the queue means "you may have missed frames: catch up from the log".
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=QUEUE_SIZE)

    def offer(self, frame: str) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.fall_behind()

    def fall_behind(self) -> None:
        """Whatever is queued may be incomplete: drop it and read the log instead."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


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

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hub-bus")
        await asyncio.wait_for(self.connected.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _route(self, channel: bytes, frame: bytes) -> None:
        user_id = keys.user_of_channel(channel.decode())
        text = frame.decode()
        for subscriber in self._subscribers.get(user_id, ()):
            subscriber.offer(text)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(keys.USER_CHANNEL_PATTERN)
                self.connected.set()
                delay = 0.1
                # Anything published while we were away is only in the log now.
                for group in self._subscribers.values():
                    for subscriber in group:
                        subscriber.fall_behind()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if message is None:
                        await pubsub.ping()
                    elif message["type"] == "pmessage":
                        self._route(message["channel"], message["data"])
            except (RedisError, OSError) as exc:
                self.connected.clear()
                log.warning("pub/sub connection lost (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
