"""What support staff did and looked for, for them and for an auditor: who, when, what, on which mentor
or job. Append-only: nothing in the hub edits or deletes a record; they age out after AUDIT_RETENTION."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from hub import keys
from hub.support.trail import Trail


class Audit:
    def __init__(self, redis: Redis, keep_seconds: int) -> None:
        self._trail = Trail(redis, keep_seconds)

    async def record(
        self, actor: str, action: str, user_id: str | None = None, job_id: str | None = None, **detail: Any
    ) -> str:
        entry = {"actor": actor, "action": action, "userId": user_id, "jobId": job_id, "detail": detail}
        return await self._trail.append(keys.SUPPORT_AUDIT, entry)

    async def page(self, limit: int, before: str | None) -> tuple[list[dict[str, Any]], str | None]:
        return await self._trail.newest(keys.SUPPORT_AUDIT, limit, before)
