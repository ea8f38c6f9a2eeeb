"""The per-user event log: every user-facing event is stored in a bounded Redis stream, then published.

Storing and publishing happen in one Lua call, so an event that any socket saw is always in the
stream too: a client that reconnects with the last id it saw can be given exactly what it missed.
The stream id doubles as the event id (strictly increasing per user, usable as `lastEventId`).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from redis.asyncio import Redis

from hub.envelope import now_iso

EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
CHANNEL_PREFIX = "hub:user:"
KEEP_SECONDS = 7 * 24 * 3600

MESSAGES = {
    "report.submitted": "Your download has started. You can continue using the app.",
    "report.completed": "Your download is ready.",
    "report.failed": "Download has failed. Please try again after sometime",
    "report.duplicate": "Download in-progress. Please try after sometime",
}

# Shared by every script that changes job state, so a state change and its event are one atomic step.
# KEYS of the caller: the stream, then the job's timeline list. ARGV: channel, retention, ttl, body.
EMIT_LUA = """
local function emit(stream, joblog, channel, retention, ttl, body)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', retention, '*', 'e', body)
  redis.call('EXPIRE', stream, ttl)
  local frame = '{"id":"' .. id .. '",' .. string.sub(body, 2)
  if joblog ~= '' then
    redis.call('RPUSH', joblog, frame)
    redis.call('EXPIRE', joblog, ttl)
  end
  redis.call('PUBLISH', channel, frame)
  return id
end
"""

_EMIT_ONLY = EMIT_LUA + "return emit(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])"


def stream_key(user_id: str) -> str:
    return f"hub:events:{user_id}"


def channel(user_id: str) -> str:
    return CHANNEL_PREFIX + user_id


def job_log_key(job_id: str) -> str:
    return f"hub:job-events:{job_id}"


def parse_id(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


def frame_id(frame: str) -> str:
    """The id of a stored frame without parsing the JSON: frames always begin `{"id":"<id>",`."""
    return frame[7 : frame.index('"', 7)]


def body(event_type: str, job_id: str, batch_id: str, **extra: Any) -> bytes:
    """An event without its id; the id is the stream id Redis gives it when it is stored."""
    event: dict[str, Any] = {"type": event_type, "ts": now_iso(), "jobId": job_id, "batchId": batch_id}
    if event_type in MESSAGES:
        event["message"] = MESSAGES[event_type]
    event.update(extra)
    return orjson.dumps(event)


def _frame(entry_id: bytes | str, fields: dict[bytes, bytes]) -> str:
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return '{"id":"' + eid + '",' + fields[b"e"].decode()[1:]


class EventLog:
    def __init__(self, redis: Redis, retention: int) -> None:
        self._redis = redis
        self._retention = retention
        self._emit = redis.register_script(_EMIT_ONLY)

    def emit_args(self, user_id: str, event: bytes) -> list[Any]:
        """ARGV for `EMIT_LUA`'s emit(), for scripts that combine it with a state change."""
        return [channel(user_id), self._retention, KEEP_SECONDS, event]

    async def emit(self, user_id: str, job_id: str, event: bytes) -> str:
        keys = [stream_key(user_id), job_log_key(job_id)]
        event_id = await self._emit(keys=keys, args=self.emit_args(user_id, event))
        return event_id.decode() if isinstance(event_id, bytes) else event_id

    async def after(self, user_id: str, after: str | None, limit: int = 500) -> list[str]:
        """Stored frames newer than `after` (all kept frames when `after` is None), oldest first."""
        start = f"({after}" if after else "-"
        entries = await self._redis.xrange(stream_key(user_id), min=start, max="+", count=limit)
        return [_frame(eid, fields) for eid, fields in entries]

    async def latest(self, user_id: str, limit: int) -> list[str]:
        entries = await self._redis.xrevrange(stream_key(user_id), count=limit)
        return [_frame(eid, fields) for eid, fields in reversed(entries)]

    async def tail(self, user_id: str) -> str:
        """The newest stored id, or `0-0`: the point a fresh subscriber starts from."""
        entries = await self._redis.xrevrange(stream_key(user_id), count=1)
        return entries[0][0].decode() if entries else "0-0"

    async def missed_too_much(self, user_id: str, after: str) -> bool:
        """True when events newer than `after` may have been trimmed away, so replay cannot be complete."""
        try:
            info = await self._redis.xinfo_stream(stream_key(user_id))
        except Exception as exc:  # redis answers "no such key" as a ResponseError
            if "no such key" in str(exc).lower():
                # `0-0` is what `tail` hands out for an empty log: nothing was kept, so nothing was missed.
                return after != "0-0"
            raise
        if info["entries-added"] <= info["length"]:
            return False
        first = info["first-entry"][0].decode()
        return parse_id(after) < parse_id(first)

    async def job_timeline(self, job_id: str) -> list[str]:
        return [f.decode() for f in await self._redis.lrange(job_log_key(job_id), 0, -1)]
