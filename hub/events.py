"""The per-user event log: every user-facing event is stored in a bounded Redis stream, then published.

Storing and publishing happen in one Lua call (`lua/emit.lua`), so an event that any socket saw is always
in the stream too: a client that reconnects with the last id it saw can be given exactly what it missed.
The stream id doubles as the event id (strictly increasing per user, usable as `lastEventId`).
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hub import keys, metrics, scripts
from hub.envelope import now_iso
from hub.i18n import text
from hub.job import job_ref

# The `messageKey` of each event a person reads (hub.i18n has its texts), and its English `message`.
MESSAGE_KEYS = {
    "report.submitted": "hub.report.submitted",
    "report.completed": "hub.report.ready",
    "report.failed": "messages.imsg.m0045",
    "report.duplicate": "messages.imsg.m0040",
}
MESSAGES = {event_type: text(key) for event_type, key in MESSAGE_KEYS.items()}


def parse_id(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


def frame_id(frame: str) -> str:
    """The id of a stored frame without parsing the JSON: frames always begin `{"id":"<id>",`."""
    return frame[7 : frame.index('"', 7)]


def draft(event_type: str, job_id: str, batch_id: str, **extra: Any) -> bytes:
    """An event without its id; the id is the stream id Redis gives it when it is stored."""
    event: dict[str, Any] = {"type": event_type, "ts": now_iso(), "jobId": job_id, "batchId": batch_id}
    event["ref"] = job_ref(job_id)  # what the mentor reads out to support
    if event_type in MESSAGES:
        event["message"] = MESSAGES[event_type]
        event["messageKey"] = MESSAGE_KEYS[event_type]
    event.update(extra)
    return orjson.dumps(event)


def _frame(entry_id: bytes | str, fields: dict[bytes, bytes]) -> str:
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return '{"id":"' + eid + '",' + fields[b"e"].decode()[1:]


class EventLog:
    def __init__(self, redis: Redis, retention: int, keep_seconds: int) -> None:
        """`retention`: events kept per user; `keep_seconds`: how long a user's log and a job's timeline
        are kept (`Settings.records_kept_seconds`), events older than that being trimmed away."""
        self._redis = redis
        self._retention = retention
        self.keep_seconds = keep_seconds
        self._event = redis.register_script(scripts.EVENT)

    def emit_args(self, user_id: str, event: bytes) -> list[Any]:
        """The ARGV tail `emit` takes (channel, retention, keep_seconds, event), for scripts that change a
        job's state and store its event in the same step."""
        if event:
            metrics.EVENTS_EMITTED.labels(orjson.loads(event)["type"]).inc()
        return [keys.user_channel(user_id), self._retention, self.keep_seconds, event]

    async def emit(self, user_id: str, job_id: str, event: bytes) -> str:
        event_id = await self._event(
            keys=[keys.user_events(user_id), keys.job_events(job_id)], args=self.emit_args(user_id, event)
        )
        return event_id.decode() if isinstance(event_id, bytes) else event_id

    async def after(self, user_id: str, after: str | None, limit: int = 500) -> list[str]:
        """Stored frames newer than `after` (all kept frames when `after` is None), oldest first."""
        start = f"({after}" if after else "-"
        entries = await self._redis.xrange(keys.user_events(user_id), min=start, max="+", count=limit)
        return [_frame(eid, fields) for eid, fields in entries]

    async def latest(self, user_id: str, limit: int) -> list[str]:
        entries = await self._redis.xrevrange(keys.user_events(user_id), count=limit)
        return [_frame(eid, fields) for eid, fields in reversed(entries)]

    async def tail(self, user_id: str) -> str:
        """The newest stored id, or `0-0`: the point a fresh subscriber starts from."""
        entries = await self._redis.xrevrange(keys.user_events(user_id), count=1)
        return entries[0][0].decode() if entries else "0-0"

    async def missed_too_much(self, user_id: str, after: str) -> bool:
        """True when events newer than `after` may have been trimmed away, so replay cannot be complete."""
        try:
            info = await self._redis.xinfo_stream(keys.user_events(user_id))
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                # `0-0` is what `tail` hands out for an empty log: nothing was kept, so nothing was missed.
                return after != "0-0"
            raise
        if info["entries-added"] <= info["length"]:
            return False
        first = info["first-entry"][0].decode()
        return parse_id(after) < parse_id(first)

    async def job_timeline(self, job_id: str) -> list[str]:
        return [f.decode() for f in await self._redis.lrange(keys.job_events(job_id), 0, -1)]
