"""Ends jobs that can no longer finish, so no mentor waits for a toast that will never come.

Every judgement is made on Redis's clock (deadlines, queue waits, and liveness, which is a key a worker
keeps renewing), never by comparing the hub's clock with a worker's. A job is ended when:
- it has run past its deadline (`TIMED_OUT`);
- no worker started it within the queue-wait limit (`NO_WORKER`);
- arq no longer holds it: it gave up after its retries, or the enqueue never happened because the
  process died (`WORKER_LOST`).
A job whose worker stopped renewing its liveness is released to the other workers now, rather than when
arq's lock expires. Every hub process sweeps; state changes are atomic, so no job ends twice.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from hub import keys
from hub.config import Settings
from hub.job import Status
from hub.reports import Jobs

log = logging.getLogger(__name__)
# arq keeps a job for a moment between the enqueue and its first poll; younger jobs are not judged lost.
LOST_AFTER_MS = 30_000


async def sweep(jobs: Jobs, redis: Redis, settings: Settings) -> int:
    """One pass over the active jobs; returns how many it ended."""
    now = await jobs.redis_now_ms()
    ended = 0
    for job_id, deadline in await jobs.active():
        job = await jobs.get(job_id)
        if job is None or job.status.ended:
            await jobs.forget(job_id)
            continue
        arq_job, arq_running = keys.arq_held(job_id)
        if job.status == Status.PROCESSING and not await jobs.is_alive(job_id):
            await redis.delete(arq_running)
        waited = now - job.submitted_at
        reason = None
        if now > deadline:
            reason = "TIMED_OUT"
        elif job.status == Status.SUBMITTED and waited > settings.queue_wait_seconds * 1000:
            reason = "NO_WORKER"
        elif waited > LOST_AFTER_MS and not await redis.exists(arq_job, arq_running):
            reason = "WORKER_LOST"
        if reason and await jobs.fail(job, reason):
            log.warning("report %s ended by the sweeper: %s", job_id, reason)
            ended += 1
    return ended


async def run(jobs: Jobs, redis: Redis, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.sweep_interval_seconds)
        try:
            await sweep(jobs, redis, settings)
        except Exception:
            log.exception("sweeping stale jobs failed")
