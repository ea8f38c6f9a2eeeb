"""Whether a notification reached the mentor: each user-facing event counts the sockets, streams and
polls it was handed to, so support can tell "the toast never reached a device" from "it did"."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub import keys

log = logging.getLogger(__name__)
# Progress frames come twice a second and say nothing a person acts on: they are not counted.
NOT_COUNTED = '"type":"report.progress"'


class Deliveries:
    def __init__(self, redis: Redis, keep_seconds: int) -> None:
        self._redis = redis
        self._keep_seconds = keep_seconds

    async def count(self, frames: Iterable[str]) -> None:
        """Counts frames a client has taken. Never fails the delivery it describes: a count that cannot be
        written is logged and left out."""
        events = [orjson.loads(frame) for frame in frames if frame.startswith('{"id"') and NOT_COUNTED not in frame]
        events = [event for event in events if event.get("jobId")]
        if not events:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for event in events:
                    key = keys.delivered(event["jobId"])
                    pipe.hincrby(key, event["id"], 1)
                    pipe.expire(key, self._keep_seconds)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not count delivered events: %s", exc)

    async def of(self, job_id: str) -> dict[str, int]:
        counts = await self._redis.hgetall(keys.delivered(job_id))
        return {event_id.decode(): int(count) for event_id, count in counts.items()}
