"""Clicks that made no job: a mentor not of the batch (403), one already being made (409), too many
requests (429). Before, they left a log line only; support needs them beside the mentor's jobs, since
"I clicked and nothing happened" is often one of these."""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub import ids, keys
from hub.errors import HubError
from hub.support.trail import Trail

log = logging.getLogger(__name__)
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

    async def note(self, user_id: str, asked: object, error: HubError) -> None:
        """Keeps the refused click, if it is one support should see, with the batch it asked for (`asked`, as
        sent: kept only if it looks like a batch id). Never changes the answer the mentor gets: a note that
        cannot be written is logged and left out."""
        if error.status not in RECORDED:
            return
        click = {
            "batchId": asked if isinstance(asked, str) and ids.BATCH_ID.fullmatch(asked) else None,
            "status": error.status,
            "code": error.code,
            "reason": REASONS.get(error.code, error.errmsg),
            "jobId": error.result.get("jobId"),
        }
        try:
            await self._trail.append(keys.refused_clicks(user_id), click)
        except (RedisError, OSError) as exc:
            log.warning("could not note a refused click: %s", exc)

    async def of(self, user_id: str, batch_id: str | None, low: int, high: int) -> list[dict[str, Any]]:
        """The user's latest refused clicks made between `low` and `high` ms, of one batch if named."""
        found, _ = await self._trail.newest(keys.refused_clicks(user_id), SHOWN, low=low, high=high)
        return [click for click in found if batch_id is None or click["batchId"] == batch_id]
