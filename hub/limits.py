"""Per-user bounds, so one client stuck in a loop (a webview resuming forever, a script) cannot flood
Redis, the source or the workers: request budgets in one-minute windows, and a cap on the sockets and
streams a user holds open. Both are counted in Redis, so they hold across every hub instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub import errors, keys, scripts, tasks
from hub.config import Settings

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60
# What each authenticated route spends from (`budgeted(request, action)`). `dashboard` covers the reads
# that aggregate over a whole batch in the source (the dashboard, the job list), so a loop cannot load it.
SPENDS_RATE_LIMIT = ("submit", "ticket", "telemetry")


class Limits:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._per_minute = {
            **dict.fromkeys(SPENDS_RATE_LIMIT, settings.rate_limit),
            "read": settings.read_rate_limit,
            "dashboard": settings.dashboard_rate_limit,
        }

    async def take(self, user_id: str, action: str) -> None:
        now = time.time()
        key = keys.budget(action, user_id, int(now) // WINDOW_SECONDS)
        async with self._redis.pipeline(transaction=True) as pipe:
            count, _ = await pipe.incr(key).expire(key, WINDOW_SECONDS).execute()
        if count > self._per_minute[action]:
            raise errors.TOO_MANY_REQUESTS(retry_after=math.ceil(WINDOW_SECONDS - now % WINDOW_SECONDS))


class Connections:
    """Each open socket or stream holds a slot in the user's sorted set, scored by when it lapses, and
    refreshes it while it lives; a slot whose hub died lapses within one lease and is freed."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._cap = settings.max_connections
        self._lease_ms = settings.connection_lease * 1000
        self._script = redis.register_script(scripts.CONNECTION)

    async def open_now(self, user_id: str) -> int:
        """How many sockets and streams the user has open now, on every hub instance."""
        seconds, micros = await self._redis.time()
        return int(await self._redis.zcount(keys.connections(user_id), f"({seconds * 1000 + micros // 1000}", "+inf"))

    async def _claim(self, key: str, connection_id: str, cap: int) -> bool:
        return bool(await self._script(keys=[key], args=[connection_id, self._lease_ms, cap]))

    @contextlib.asynccontextmanager
    async def hold(self, user_id: str) -> AsyncIterator[None]:
        key, connection_id = keys.connections(user_id), uuid.uuid4().hex
        if not await self._claim(key, connection_id, self._cap):
            raise errors.TOO_MANY_CONNECTIONS(limit=self._cap)
        refreshing = asyncio.create_task(self._refresh(key, connection_id), name="connection-lease")
        try:
            yield
        finally:
            await tasks.stop(refreshing)
            with contextlib.suppress(RedisError, OSError):
                await self._redis.zrem(key, connection_id)

    async def _refresh(self, key: str, connection_id: str) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                await self._claim(key, connection_id, 0)
            except (RedisError, OSError) as exc:
                log.warning("could not refresh a connection's slot: %s", exc)
