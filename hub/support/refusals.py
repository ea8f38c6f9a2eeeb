"""Clicks that made no job: a mentor not of the batch (403), one already being made (409), too many
requests (429). Before, they left a log line only; support needs them beside the mentor's jobs, since
"I clicked and nothing happened" is often one of these."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from hub import keys
from hub.errors import HubError
from hub.support.trail import Trail

RECORDED = {403, 409, 429}
REASONS = {
    "NOT_A_MENTOR": "not a mentor or creator of the batch",
    "DOWNLOAD_IN_PROGRESS": "a report of the batch was already being made",
    "TOO_MANY_REQUESTS": "too many requests in a minute",
}
SHOWN = 50


class Refusals:
    def __init__(self, redis: Redis, keep_seconds: int) -> None:
        self._trail = Trail(redis, keep_seconds)

    async def note(self, user_id: str, batch_id: str | None, error: HubError) -> None:
        """Keeps the refused click, if it is one support should see."""
        if error.status not in RECORDED:
            return
        await self._trail.append(
            keys.refused_clicks(user_id),
            {
                "batchId": batch_id,
                "status": error.status,
                "code": error.code,
                "reason": REASONS.get(error.code, error.errmsg),
                "jobId": error.result.get("jobId"),
            },
        )

    async def of(self, user_id: str, batch_id: str | None, low: int, high: int) -> list[dict[str, Any]]:
        """The user's latest refused clicks made between `low` and `high` ms, of one batch if named."""
        found, _ = await self._trail.newest(keys.refused_clicks(user_id), SHOWN, low=low, high=high)
        return [click for click in found if batch_id is None or click["batchId"] == batch_id]
