"""Ends jobs that can no longer finish, so no mentor waits for a toast that will never come.

A job is lost when arq no longer holds it (it gave up after its retries, or the enqueue never happened
because the process died), or when it has run past its deadline. A job whose worker stopped beating is
released to the other workers now rather than when arq's lock expires. Every hub process sweeps; the
state changes are atomic, so two sweepers never end one job twice.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from hub import keys
from hub.job import Status
from hub.reports import Jobs, now_ms

log = logging.getLogger(__name__)
SWEEP_EVERY_SECONDS = 5.0
LOST_AFTER_SECONDS = 30
STALE_AFTER_SECONDS = 10


async def sweep(jobs: Jobs, redis: Redis) -> int:
    """One pass over the active jobs; returns how many it ended."""
    now = now_ms()
    ended = 0
    for job_id, deadline in await jobs.active():
        job = await jobs.get(job_id)
        if job is None or job.status.ended:
            await jobs.forget(job_id)
            continue
        arq_job, arq_running = keys.arq_held(job_id)
        if job.status == Status.PROCESSING and job.heartbeat and now - job.heartbeat > STALE_AFTER_SECONDS * 1000:
            await redis.delete(arq_running)
        reason = None
        if now > deadline:
            reason = "TIMED_OUT"
        elif now - job.submitted_at > LOST_AFTER_SECONDS * 1000 and not await redis.exists(arq_job, arq_running):
            reason = "WORKER_LOST"
        if reason and await jobs.fail(job, reason):
            ended += 1
    return ended


async def run(jobs: Jobs, redis: Redis) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY_SECONDS)
        try:
            await sweep(jobs, redis)
        except Exception:
            log.exception("sweeping stale jobs failed")
