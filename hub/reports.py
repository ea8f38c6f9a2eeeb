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
from enum import IntEnum
from typing import Any

import orjson
from arq.connections import ArqRedis

from hub import events, keys, metrics, scripts
from hub.config import Settings
from hub.durability import NotDurable, durable
from hub.events import EventLog
from hub.job import Job, Secret, Status, file_name
from hub.notifier import Notifier

JOB_FUNCTION = "generate_report"
RECENT_JOBS = 100
CLOCK_SKEW_ALLOWANCE = timedelta(hours=1)
# How long a click remembers it was told of a duplicate: longer than redis-py takes to re-send a command.
TOLD_MS = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


def deadline_ms(settings: Settings) -> int:
    """A job's time from its click to its deadline: one that has not ended by then never will (arq has
    given up, or the worker pool is gone), and a worker retries its ending until then."""
    return (settings.report_timeout * settings.max_tries + 60) * 1000


@dataclass(frozen=True)
class Submission:
    """What a click found: `job_id` is the job it made (`created`) or the caller's running one; `job` is
    the job the click made or would have made, whose id (`click`) names the click itself."""

    job_id: str
    created: bool
    click: str
    job: Job
    unsure: NotDurable | None = None  # made, but fewer replicas than REDIS_WAIT_REPLICAS hold it


class Outcome(IntEnum):
    """What `lua/transition.lua` did with a change."""

    APPLIED = 1
    RESTORED = 2  # applied to a record written anew: Redis had lost it
    ALREADY = 3  # this very change had ended the job: a re-sent command whose first reply was lost
    ENDED = 0  # the job had ended by another change
    GONE = -1  # no such job, and the change neither starts nor ends it
    SUPERSEDED = -2  # another run of the job holds it
    UNEXPECTED = -3  # the job is not in the status the change expects

    @property
    def applied(self) -> bool:
        return self > 0


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
        self.deadline_ms = deadline_ms(settings)

    async def submit(
        self, user_id: str, batch_id: str, course_id: str, protected: bool = False, fmt: str = "csv"
    ) -> Submission:
        """Creates the job and its `report.submitted` event, or names the caller's running one (whatever
        its format: the guard is per user and batch). A protected job's file is a password-protected ZIP."""
        now = now_ms()
        job = Job(
            job_id=uuid.uuid4().hex,
            batch_id=batch_id,
            course_id=course_id,
            requested_by=user_id,
            status=Status.SUBMITTED,
            submitted_at=now,  # replaced by Redis's clock as the job is stored
            file_name=file_name(batch_id, now, self._zone, protected, fmt),
            format=fmt,
        )
        submitted = events.draft("report.submitted", job.job_id, batch_id)
        unsure: NotDurable | None = None
        try:
            answer = await self._submit(
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
        except NotDurable as exc:
            if not exc.answer[0]:
                raise  # the running job it names may be one a failover takes back: no 409 for it
            answer, unsure = exc.answer, exc
        created, running = answer
        running = running.decode() if isinstance(running, bytes) else running
        return Submission(job_id=running, created=bool(created), click=job.job_id, job=job, unsure=unsure)

    async def tell_duplicate(self, user_id: str, batch_id: str, job_id: str, click: str | None = None) -> bool:
        """Sends `report.duplicate` for the user's running job, once per `click` (a re-sent call tells
        nothing more); False if it ended in the meantime."""
        click = click or uuid.uuid4().hex
        duplicate = events.draft("report.duplicate", job_id, batch_id)
        told = await self._duplicate(
            keys=[keys.guard(user_id, batch_id), keys.user_events(user_id), keys.job_events(job_id), keys.told(click)],
            args=[job_id, TOLD_MS, *self._events.emit_args(user_id, duplicate)],
        )
        return told == 1

    async def enqueue(self, job: Job, password: str | None = None) -> None:
        """Queues the job as due an hour ago: arq compares a job's due time with the worker's own clock, so a
        worker whose clock runs behind the hub's would leave every new job waiting until it caught up.
        A protected job's password goes in the arq job's arguments and nowhere else: arq deletes them when
        the job ends, or at the job's deadline if no worker ever takes it.
        The job's first record goes too, so a worker can write it anew should Redis lose it (a failover to a
        replica that had not yet received the submit) and the mentor still hears how the job ended."""
        due = datetime.now(UTC) - CLOCK_SKEW_ALLOWANCE
        secret = () if password is None else (Secret(password),)
        await self._redis.enqueue_job(
            JOB_FUNCTION, job.job_id, *secret, record=job.encode(), _job_id=job.job_id, _defer_until=due,
            _expires=timedelta(milliseconds=self.deadline_ms),
        )  # fmt: skip

    async def queued(self, job_id: str) -> bool:
        """Whether arq holds the job (queued or running)."""
        return bool(await self._redis.exists(*keys.arq_held(job_id)))

    async def get(self, job_id: str) -> Job | None:
        return Job.decode(await self._redis.hgetall(keys.job(job_id)))

    async def transition(
        self,
        job: Job,
        status: Status | None = None,
        event: bytes = b"",
        alive_ms: int | None = None,
        run: str = "",
        expect: Status | None = None,
        **fields: Any,
    ) -> Outcome:
        """Applies a change to a job that has not ended (restoring its record if Redis lost it and the
        change starts or ends the job). `run` is the worker run making it (see `lua/transition.lua`);
        `alive_ms` marks the job as being made for that much longer; `expect` the status the job must have.
        A change that ends the job is safe to send twice: the second answer is `Outcome.ALREADY`."""
        user_id = job.requested_by
        token = run or uuid.uuid4().hex
        outcome = Outcome(
            await (self._ending if status is not None and status.ended else self._transition)(
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
                    run,
                    token,
                    expect or "",
                    self.deadline_ms,
                    *self._events.emit_args(user_id, event),
                ],
            )
        )
        if outcome.applied and status is not None and status.ended:
            metrics.REPORTS_ENDED.labels(status.value.lower(), fields.get("error") or "none").inc()
        if outcome.applied and status is not None and status.ended and self._notifier is not None:
            self._notifier.ended(job, status, fields.get("error"), event)
        return outcome

    async def fail(self, job: Job, reason: str, run: str = "") -> Outcome:
        event = events.draft("report.failed", job.job_id, job.batch_id, reason=reason)
        return await self.transition(job, Status.FAILED, event, run=run, error=reason, completedAt=now_ms())

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

    async def run_of(self, job_id: str) -> str:
        """The token of the worker run that holds the job ('' before any)."""
        run = await self._redis.hget(keys.job(job_id), "run")
        return run.decode() if run else ""

    async def told_position(self, job_id: str) -> int | None:
        """The place in the queue the job's mentor was last told, if any."""
        place = await self._redis.hget(keys.job(job_id), "queuePosition")
        return int(place) if place else None

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
