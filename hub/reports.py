"""Report jobs: the per-(user, batch) in-progress guard, job records, and their state changes.

Every state change that a mentor must hear about is one Lua call that updates the job, releases the
guard when the job ends, and stores and publishes the event together. No crash between two Redis calls
can leave a finished job with a held guard or a job that ended without telling anyone.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix

from hub import events
from hub.envelope import iso
from hub.events import EMIT_LUA, EventLog
from hub.storage import Storage

SUBMITTED, PROCESSING, SUCCESS, FAILED = "SUBMITTED", "PROCESSING", "SUCCESS", "FAILED"
TERMINAL = (SUCCESS, FAILED)
JOB_FUNCTION = "generate_report"
ACTIVE = "hub:active"
RECENT_JOBS = 100
LOST_AFTER_SECONDS = 30
STALE_AFTER_SECONDS = 10

_SUBMIT = (
    EMIT_LUA
    + """
local running = redis.call('GET', KEYS[1])
if running then return {0, running} end
local job_id = ARGV[1]
local job = 'hub:job:' .. job_id
redis.call('SET', KEYS[1], job_id, 'EX', ARGV[2])
redis.call('HSET', job, unpack(ARGV, 10))
redis.call('EXPIRE', job, ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[3], job_id)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
redis.call('EXPIRE', KEYS[2], ARGV[8])
redis.call('ZADD', KEYS[3], ARGV[4], job_id)
emit(KEYS[4], 'hub:job-events:' .. job_id, ARGV[6], ARGV[7], ARGV[8], ARGV[9])
return {1, job_id}
"""
)

_TRANSITION = (
    EMIT_LUA
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status == 'SUCCESS' or status == 'FAILED' then return 0 end
if #ARGV >= 9 then redis.call('HSET', KEYS[1], unpack(ARGV, 9)) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'status', ARGV[4]) end
if ARGV[4] == 'SUCCESS' or ARGV[4] == 'FAILED' then
  local guard = 'hub:guard:' .. ARGV[2] .. ':' .. ARGV[3]
  if redis.call('GET', guard) == ARGV[1] then redis.call('DEL', guard) end
  redis.call('ZREM', KEYS[3], ARGV[1])
end
if ARGV[8] ~= '' then emit(KEYS[2], 'hub:job-events:' .. ARGV[1], ARGV[5], ARGV[6], ARGV[7], ARGV[8]) end
return 1
"""
)


def now_ms() -> int:
    return int(time.time() * 1000)


def decoded(record: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in record.items()}


def job_key(job_id: str) -> str:
    return f"hub:job:{job_id}"


def guard_key(user_id: str, batch_id: str) -> str:
    return f"hub:guard:{user_id}:{batch_id}"


def file_name(batch_id: str, when_ms: int, zone: ZoneInfo) -> str:
    """Named by the day of the click where the mentor is, not in UTC (05:29 in India is still yesterday there)."""
    return f"{batch_id}_progress_{datetime.fromtimestamp(when_ms / 1000, zone):%Y%m%d}.csv"


@dataclass(frozen=True)
class Submission:
    job_id: str
    created: bool


class Jobs:
    def __init__(
        self, redis: ArqRedis, log: EventLog, storage: Storage, job_timeout: int, max_tries: int, zone: ZoneInfo
    ) -> None:
        self._redis = redis
        self._zone = zone
        self._log = log
        self._storage = storage
        self._submit = redis.register_script(_SUBMIT)
        self._transition = redis.register_script(_TRANSITION)
        # A job that has not ended by then never will: arq has given up or the worker pool is gone.
        self._deadline_ms = (job_timeout * max_tries + 60) * 1000

    async def submit(self, user_id: str, batch_id: str, course_id: str) -> Submission:
        """Creates the job and its `report.submitted` event, or names the caller's running one."""
        job_id = uuid.uuid4().hex
        now = now_ms()
        fields: dict[str, Any] = {
            "jobId": job_id,
            "batchId": batch_id,
            "courseId": course_id,
            "requestedBy": user_id,
            "status": SUBMITTED,
            "submittedAt": now,
            "startedAt": "",
            "completedAt": "",
            "rows": "",
            "bytes": "",
            "fileName": file_name(batch_id, now, self._zone),
            "error": "",
        }
        pairs = [part for item in fields.items() for part in item]
        submitted = events.body("report.submitted", job_id, batch_id)
        created, jid = await self._submit(
            keys=[guard_key(user_id, batch_id), f"hub:jobs:{user_id}", ACTIVE, events.stream_key(user_id)],
            args=[
                job_id,
                self._deadline_ms // 1000,
                now,
                now + self._deadline_ms,
                RECENT_JOBS,
                *self._log.emit_args(user_id, submitted),
                *pairs,
            ],
        )
        return Submission(job_id=jid.decode() if isinstance(jid, bytes) else jid, created=bool(created))

    async def enqueue(self, job_id: str) -> None:
        await self._redis.enqueue_job(JOB_FUNCTION, job_id, _job_id=job_id)

    async def get(self, job_id: str) -> dict[str, str] | None:
        return decoded(await self._redis.hgetall(job_key(job_id))) or None

    async def transition(
        self, job: dict[str, str], status: str = "", event: bytes | None = None, **fields: Any
    ) -> bool:
        """Applies a change to a job that has not ended; False when it had already ended."""
        user_id = job["requestedBy"]
        pairs = [str(part) for item in fields.items() for part in item]
        applied = await self._transition(
            keys=[job_key(job["jobId"]), events.stream_key(user_id), ACTIVE],
            args=[
                job["jobId"],
                user_id,
                job["batchId"],
                status,
                *self._log.emit_args(user_id, event or b""),
                *pairs,
            ],
        )
        return applied == 1

    async def fail(self, job: dict[str, str], reason: str) -> bool:
        event = events.body("report.failed", job["jobId"], job["batchId"], reason=reason)
        return await self.transition(job, FAILED, event, error=reason, completedAt=now_ms())

    async def recent(self, user_id: str, batch_id: str | None, limit: int = 20) -> list[dict[str, str]]:
        ids = await self._redis.zrevrange(f"hub:jobs:{user_id}", 0, RECENT_JOBS - 1)
        async with self._redis.pipeline(transaction=False) as pipe:  # one round trip, not one per job
            for job_id in ids:
                pipe.hgetall(job_key(job_id.decode()))
            records = await pipe.execute()
        jobs = [decoded(raw) for raw in records if raw]
        return [job for job in jobs if batch_id is None or job["batchId"] == batch_id][:limit]

    async def view(self, job: dict[str, str]) -> dict[str, Any]:
        """The contract's job shape; a SUCCESS job gets a freshly minted link at every read."""
        url = expires_at = None
        if job["status"] == SUCCESS:
            url, expires_at = await self._storage.download_url(job["jobId"], storage_key(job))

        def number(name: str) -> int | None:
            return int(job[name]) if job.get(name) else None

        def when(name: str) -> str | None:
            return iso(int(job[name])) if job.get(name) else None

        return {
            "jobId": job["jobId"],
            "batchId": job["batchId"],
            "requestedBy": job["requestedBy"],
            "status": job["status"],
            "submittedAt": when("submittedAt"),
            "startedAt": when("startedAt"),
            "completedAt": when("completedAt"),
            "rows": number("rows"),
            "bytes": number("bytes"),
            "fileName": job["fileName"],
            "downloadUrl": url,
            "expiresAt": expires_at,
            "error": job.get("error") or None,
        }

    async def sweep(self) -> int:
        """Ends jobs that can no longer finish, so no mentor waits for a toast that will never come.

        A job is lost when arq no longer holds it (it gave up after its retries, or the enqueue never
        happened because the process died), or when it has run past its deadline. A job whose worker
        stopped beating is released to the other workers now rather than when arq's lock expires.
        """
        now = now_ms()
        ended = 0
        for raw_id, deadline in await self._redis.zrange(ACTIVE, 0, -1, withscores=True):
            job_id = raw_id.decode()
            job = await self.get(job_id)
            if job is None or job["status"] in TERMINAL:
                await self._redis.zrem(ACTIVE, job_id)
                continue
            reason = None
            heartbeat = int(job.get("heartbeat") or 0)
            if job["status"] == PROCESSING and heartbeat and now - heartbeat > STALE_AFTER_SECONDS * 1000:
                await self._redis.delete(in_progress_key_prefix + job_id)
            if now > deadline:
                reason = "TIMED_OUT"
            elif now - int(job["submittedAt"]) > LOST_AFTER_SECONDS * 1000:
                held = await self._redis.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id)
                if not held:
                    reason = "WORKER_LOST"
            if reason and await self.fail(job, reason):
                ended += 1
        return ended


def run_key(job: dict[str, str]) -> str:
    """Where one run of a job writes its file; the job keeps the key of the run that succeeded."""
    return f"reports/{job['batchId']}/{job['jobId']}/{uuid.uuid4().hex[:8]}/{job['fileName']}"


def storage_key(job: dict[str, str]) -> str:
    return job["key"]
