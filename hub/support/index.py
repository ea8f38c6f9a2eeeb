"""Support's indexes of jobs: one sorted set per reference, user, batch and UTC day, each member a job id
scored by its submission time (Redis's clock, ms). A search reads the narrowest index that applies, newest
first, and never scans the keyspace. Entries are trimmed, and indexes expire, as the jobs they name do.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from hub import keys
from hub.job import Job

DAY_MS = 86_400_000
CHUNK = 200


def day_of(ms: int) -> int:
    return ms // DAY_MS


def index_keys(job: Job) -> list[str]:
    return [
        keys.support_by_ref(job.ref),
        keys.support_by_user(job.requested_by),
        keys.support_by_batch(job.batch_id),
        keys.support_by_day(day_of(job.submitted_at)),
    ]


class JobIndex:
    def __init__(self, redis: Redis, kept_ms: int) -> None:
        self._redis = redis
        self.kept_ms = kept_ms

    async def add(self, job: Job) -> None:
        """Enters the job in every index, in one transaction; safe to repeat (a member is added once)."""
        oldest = int(time.time() * 1000) - self.kept_ms
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in index_keys(job):
                pipe.zadd(key, {job.job_id: job.submitted_at})
                pipe.zremrangebyscore(key, "-inf", f"({oldest}")
                pipe.pexpire(key, self.kept_ms)
            await pipe.execute()

    async def walk(self, index: list[str], low: int, high: int) -> AsyncIterator[tuple[str, int]]:
        """(job id, submitted ms) of the jobs in the indexes, taken in order, each newest first, submitted
        within [low, high]; ties in time come in descending id order, as a cursor expects. Read in chunks from
        a fixed top, so jobs submitted meanwhile do not shift the pages."""
        for key in index:
            offset = 0
            while True:
                chunk = await self._redis.zrevrangebyscore(key, high, low, start=offset, num=CHUNK, withscores=True)
                for member, score in chunk:
                    yield member.decode(), int(score)
                if len(chunk) < CHUNK:
                    break
                offset += CHUNK
