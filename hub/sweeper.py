"""Ends jobs that can no longer finish, so no mentor waits for a toast that will never come, and tells the
mentors of jobs that wait for a busy worker where they stand.

Every judgement is made on Redis's clock (deadlines, queue waits, and liveness, which is a key a worker
keeps renewing), never by comparing the hub's clock with a worker's. A job is ended when:
- it has run past its deadline (`TIMED_OUT`);
- no worker started it within the queue-wait limit and no worker is alive (`NO_WORKER`); while workers
  are alive but busy it waits, and its mentor gets `report.progress` with its place in the queue;
- arq no longer holds it: it gave up after its retries, or the enqueue never happened because the
  process died (`WORKER_LOST`).
A job whose run stopped renewing its liveness, and stayed so for as long as liveness lasts, is released to
the other workers now rather than when arq's lock expires. One missed renewal is not enough: liveness also
lapses while a retried job is being taken up, and during a Redis outage longer than it lasts, and handing
a live job to a second worker would run it twice. Every hub process sweeps; state changes are atomic, so no
job ends twice.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from hub import keys, queue
from hub.config import Settings
from hub.job import Job, Status
from hub.reports import Jobs
from hub.source import Source, SourceError

log = logging.getLogger(__name__)
# arq keeps a job for a moment between the enqueue and its first poll; younger jobs are not judged lost.
LOST_AFTER_MS = 30_000
# How long a run's liveness must stay missing before its job is released (what liveness lasts, ALIVE_MS).
RELEASE_AFTER_MS = 10_000
# A job that has waited this long for a worker is told its place in the queue.
TELL_QUEUED_AFTER_MS = 2_000


class Sweeper:
    def __init__(self, jobs: Jobs, redis: Redis, settings: Settings, source: Source) -> None:
        self._jobs = jobs
        self._redis = redis
        self._settings = settings
        self._source = source
        # Job id -> (its run, when this sweeper first saw that run without liveness), Redis's clock.
        self._lapsed: dict[str, tuple[str, int]] = {}

    async def sweep(self) -> int:
        """One pass over the active jobs; returns how many it ended."""
        jobs = self._jobs
        now = await jobs.redis_now_ms()
        ended = 0
        waiting: list[Job] = []
        lapsed: dict[str, tuple[str, int] | None] = {}
        for job_id, deadline in await jobs.active():
            job = await jobs.get(job_id)
            if job is None or job.status.ended:
                await jobs.forget(job_id)
                continue
            arq_job, arq_running = keys.arq_held(job_id)
            if job.status == Status.PROCESSING and not await jobs.is_alive(job_id):
                lapsed[job_id] = await self._release_if_dead(job_id, now)
            waited = now - job.submitted_at
            reason = None
            if now > deadline:
                reason = "TIMED_OUT"
            elif job.status == Status.SUBMITTED:
                if waited > self._settings.queue_wait_seconds * 1000 and await jobs.workers_alive() == 0:
                    reason = "NO_WORKER"
                elif waited > TELL_QUEUED_AFTER_MS:
                    waiting.append(job)
            if reason is None and waited > LOST_AFTER_MS and not await self._redis.exists(arq_job, arq_running):
                reason = "WORKER_LOST"
            if reason and (await jobs.fail(job, reason)).applied:
                log.warning("report %s ended by the sweeper: %s", job_id, reason)
                ended += 1
        self._lapsed = {job_id: seen for job_id, seen in lapsed.items() if seen is not None}
        if waiting:
            await self._tell_positions(waiting)
        return ended

    async def _release_if_dead(self, job_id: str, now: int) -> tuple[str, int] | None:
        """Releases the job from its run once that run's liveness has stayed missing for `RELEASE_AFTER_MS`;
        returns what to remember of the lapse (None once released)."""
        run = await self._jobs.run_of(job_id)
        seen = self._lapsed.get(job_id)
        if seen is None or seen[0] != run:
            return run, now
        if now - seen[1] < RELEASE_AFTER_MS:
            return seen
        await self._redis.delete(keys.arq_held(job_id)[1])
        log.warning("report %s: its run has shown no sign of life for %d s; released", job_id, (now - seen[1]) // 1000)
        return None

    async def _tell_positions(self, waiting: list[Job]) -> None:
        """A `report.progress` to each waiting job's mentor whose place in the queue changed."""
        places = await queue.positions(self._redis)
        for job in waiting:
            place = places.get(job.job_id)
            if place is None or await self._jobs.told_position(job.job_id) == place:
                continue
            try:
                participants = await self._source.participant_count(job.batch_id)
            except SourceError as exc:
                log.warning("report %s: its place in the queue was not told: %s", job.job_id, exc)
                continue
            event = queue.queued_event(job, place, participants)
            await self._jobs.transition(job, event=event, expect=Status.SUBMITTED, queuePosition=place)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sweep_interval_seconds)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweeping stale jobs failed")
