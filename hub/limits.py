"""Per-user request budgets, so one client stuck in a retry loop (a webview resuming forever, a script)
cannot flood Redis or the workers. One-minute windows counted in Redis, shared by every hub instance.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from hub import errors, keys

WINDOW_SECONDS = 60


class Limits:
    def __init__(self, redis: Redis, per_minute: int) -> None:
        self._redis = redis
        self._per_minute = per_minute

    async def take(self, user_id: str, action: str) -> None:
        key = keys.budget(action, user_id, int(time.time()) // WINDOW_SECONDS)
        async with self._redis.pipeline(transaction=True) as pipe:
            count, _ = await pipe.incr(key).expire(key, WINDOW_SECONDS).execute()
        if count > self._per_minute:
            raise errors.TOO_MANY_REQUESTS()
