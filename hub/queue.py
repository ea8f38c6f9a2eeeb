"""A job waiting for a worker, as its mentor is told while every worker is busy: where it stands in arq's
queue, and by when the seed promised the report (its speed table, by the batch's size).
"""

from __future__ import annotations

from redis.asyncio import Redis

from hub import events, keys
from hub.envelope import iso
from hub.job import Job

# The seed's promise, click to "ready", by participants in the batch: (fewer than, seconds).
PROMISES = ((10_000, 10), (50_001, 20), (100_001, 60))
PROMISE_ABOVE_SECONDS = 120


def promised_seconds(participants: int) -> int:
    return next((seconds for below, seconds in PROMISES if participants < below), PROMISE_ABOVE_SECONDS)


async def positions(redis: Redis) -> dict[str, int]:
    """Where each job that no worker has taken stands in arq's queue (1: next), in one pass over it."""
    queued = [raw.decode() for raw in await redis.zrange(keys.ARQ_QUEUE, 0, -1)]
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in queued:
            pipe.exists(keys.arq_held(job_id)[1])
        taken = await pipe.execute()
    waiting = [job_id for job_id, running in zip(queued, taken, strict=True) if not running]
    return {job_id: place for place, job_id in enumerate(waiting, 1)}


def queued_event(job: Job, position: int, participants: int) -> bytes:
    """`report.progress` of a job still waiting: nothing written yet, its place in the queue, and by when
    the report was promised."""
    promised_by = iso(job.submitted_at + promised_seconds(participants) * 1000)
    return events.draft(
        "report.progress", job.job_id, job.batch_id, rows=0, total=participants, percent=0, queued=True,
        position=position, promisedBy=promised_by,
    )  # fmt: skip
