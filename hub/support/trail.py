"""An append-only record of things that happened, kept for a while: a Redis stream per subject, whose
ids are the times of the records (so a record's time cannot be forged or edited), trimmed by age."""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from hub.envelope import iso
from hub.events import parse_id


class Trail:
    def __init__(self, redis: Redis, keep_seconds: int) -> None:
        self._redis = redis
        self.keep_seconds = keep_seconds

    async def append(self, key: str, record: dict[str, Any]) -> str:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(key, {"r": orjson.dumps(record)})
            pipe.expire(key, self.keep_seconds)
            record_id, _ = await pipe.execute()
        oldest = parse_id(record_id.decode())[0] - self.keep_seconds * 1000
        await self._redis.xtrim(key, minid=str(oldest), approximate=True)
        return record_id.decode()

    async def newest(
        self, key: str, limit: int, before: str | None = None, low: int | None = None, high: int | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` records older than the record id `before` (or made at `high` ms or earlier), and at
        `low` ms or later, newest first; and the cursor for the page after them (None when there is none)."""
        top = f"({before}" if before else "+" if high is None else str(high)
        bottom = "-" if low is None else str(low)
        entries = await self._redis.xrevrange(key, max=top, min=bottom, count=limit + 1)
        page = [_record(record_id.decode(), fields) for record_id, fields in entries[:limit]]
        return page, page[-1]["id"] if len(entries) > limit else None


def _record(record_id: str, fields: dict[bytes, bytes]) -> dict[str, Any]:
    return {"id": record_id, "at": iso(parse_id(record_id)[0]), **orjson.loads(fields[b"r"])}
