"""Report jobs: the per-(user, batch) in-progress guard, job records, and their state changes.

Every state change that a mentor must hear about is one Lua call (`lua/transition.lua`) that updates the
job, releases the guard when the job ends, and stores and publishes the event together. No crash between
two Redis calls can leave a finished job with a held guard or a job that ended without telling anyone.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from arq.connections import ArqRedis

from hub import events, keys, scripts
from hub.config import Settings
from hub.durability import durable
from hub.events import EventLog
from hub.job import Job, Secret, Status, file_name
from hub.notifier import Notifier

JOB_FUNCTION = "generate_report"
RECENT_JOBS = 100
CLOCK_SKEW_ALLOWANCE = timedelta(hours=1)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Submission:
    job_id: str
    created: bool


class Jobs:
    def __init__(
        self, redis: ArqRedis, event_log: EventLog, settings: Settings, notifier: Notifier | None = None
    ) -> None:
        self._redis = redis
        self._notifier = notifier  # told of every job that ends, wherever it ends (worker or sweeper)
        self._zone = settings.report_zone
        self._events = event_log
        # A submit and a job's end wait for REDIS_WAIT_REPLICAS replicas (hub.durability); progress does not.
        self._submit = durable(redis.register_script(scripts.SUBMIT), settings)
        self._transition = redis.register_script(scripts.TRANSITION)
        self._ending = durable(self._transition, settings)
        self._duplicate = redis.register_script(scripts.DUPLICATE)
        self._workers = redis.register_script(scripts.WORKERS)
        self._now = redis.register_script(scripts.NOW)
        # A job that has not ended by then never will: arq has given up or the worker pool is gone.
        self.deadline_ms = (settings.report_timeout * settings.max_tries + 60) * 1000

    async def submit(self, user_id: str, batch_id: str, course_id: str, protected: bool = False) -> Submission:
        """Creates the job and its `report.submitted` event, or names the caller's running one. A protected
        job's file is a password-protected ZIP."""
        now = now_ms()
        job = Job(
            job_id=uuid.uuid4().hex,
            batch_id=batch_id,
            course_id=course_id,
            requested_by=user_id,
            status=Status.SUBMITTED,
            submitted_at=now,  # replaced by Redis's clock as the job is stored
            file_name=file_name(batch_id, now, self._zone, protected),
        )
        submitted = events.draft("report.submitted", job.job_id, batch_id)
        created, job_id = await self._submit(
            keys=[
                keys.guard(user_id, batch_id),
                keys.job(job.job_id),
                keys.user_jobs(user_id),
                keys.ACTIVE,
                keys.user_events(user_id),
                keys.job_events(job.job_id),
            ],
            args=[
                job.job_id,
                orjson.dumps(job.encode()),
                self.deadline_ms,
                RECENT_JOBS,
                *self._events.emit_args(user_id, submitted),
            ],
        )
        return Submission(job_id=job_id.decode() if isinstance(job_id, bytes) else job_id, created=bool(created))

    async def tell_duplicate(self, user_id: str, batch_id: str, job_id: str) -> bool:
        """Sends `report.duplicate` for the user's running job; False if it ended in the meantime."""
        duplicate = events.draft("report.duplicate", job_id, batch_id)
        told = await self._duplicate(
            keys=[keys.guard(user_id, batch_id), keys.user_events(user_id), keys.job_events(job_id)],
            args=[job_id, *self._events.emit_args(user_id, duplicate)],
        )
        return told == 1

    async def enqueue(self, job_id: str, password: str | None = None) -> None:
        """Queues the job as due an hour ago: arq compares a job's due time with the worker's own clock, so a
        worker whose clock runs behind the hub's would leave every new job waiting until it caught up.
        A protected job's password goes in the arq job's arguments and nowhere else: arq deletes them when
        the job ends, or at the job's deadline if no worker ever takes it."""
        due = datetime.now(UTC) - CLOCK_SKEW_ALLOWANCE
        secret = () if password is None else (Secret(password),)
        await self._redis.enqueue_job(
            JOB_FUNCTION, job_id, *secret, _job_id=job_id, _defer_until=due,
            _expires=timedelta(milliseconds=self.deadline_ms),
        )  # fmt: skip

    async def get(self, job_id: str) -> Job | None:
        return Job.decode(await self._redis.hgetall(keys.job(job_id)))

    async def transition(
        self, job: Job, status: Status | None = None, event: bytes = b"", alive_ms: int | None = None, **fields: Any
    ) -> bool:
        """Applies a change to a job that has not ended (restoring its record if Redis lost it and the
        change ends the job); False when it had already ended, or is gone and the change would not end it.
        `alive_ms` marks the job as being made for that much longer."""
        user_id = job.requested_by
        script = self._ending if status is not None and status.ended else self._transition
        applied = await script(
            keys=[
                keys.job(job.job_id),
                keys.guard(user_id, job.batch_id),
                keys.ACTIVE,
                keys.alive(job.job_id),
                keys.user_events(user_id),
                keys.job_events(job.job_id),
            ],
            args=[
                job.job_id,
                status or "",
                orjson.dumps({name: str(value) for name, value in fields.items()}),
                "" if alive_ms is None else alive_ms,
                orjson.dumps(job.encode()),
                *self._events.emit_args(user_id, event),
            ],
        )
        if applied > 0 and status is not None and status.ended and self._notifier is not None:
            self._notifier.ended(job, status, fields.get("error"))
        return applied > 0

    async def fail(self, job: Job, reason: str) -> bool:
        event = events.draft("report.failed", job.job_id, job.batch_id, reason=reason)
        return await self.transition(job, Status.FAILED, event, error=reason, completedAt=now_ms())

    async def many(self, job_ids: list[str]) -> list[Job | None]:
        """The jobs, in order (None for one that is gone), in one round trip rather than one per job."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(keys.job(job_id))
            records = await pipe.execute()
        return [Job.decode(record) for record in records]

    async def recent(self, user_id: str, batch_id: str | None, limit: int = 20) -> list[Job]:
        ids = await self._redis.zrevrange(keys.user_jobs(user_id), 0, RECENT_JOBS - 1)
        jobs = [job for job in await self.many([job_id.decode() for job_id in ids]) if job is not None]
        return [job for job in jobs if batch_id is None or job.batch_id == batch_id][:limit]

    async def active(self) -> list[tuple[str, int]]:
        """Every job that has not ended, with its deadline (ms, Redis's clock)."""
        entries = await self._redis.zrange(keys.ACTIVE, 0, -1, withscores=True)
        return [(raw.decode(), int(deadline)) for raw, deadline in entries]

    async def forget(self, job_id: str) -> None:
        """Drops a job that has ended (or vanished) from the active set."""
        await self._redis.zrem(keys.ACTIVE, job_id)

    async def is_alive(self, job_id: str) -> bool:
        return bool(await self._redis.exists(keys.alive(job_id)))

    async def redis_now_ms(self) -> int:
        return int(await self._now(keys=[], args=[]))

    async def register_worker(self, worker_id: str, ttl_ms: int) -> int:
        """Counts the worker as alive for `ttl_ms` more; returns how many workers are alive."""
        return int(await self._workers(keys=[keys.WORKERS], args=[worker_id, ttl_ms]))

    async def workers_alive(self) -> int:
        return int(await self._workers(keys=[keys.WORKERS], args=["", 0]))

    async def unregister_worker(self, worker_id: str) -> None:
        await self._redis.zrem(keys.WORKERS, worker_id)
