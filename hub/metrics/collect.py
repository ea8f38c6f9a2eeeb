"""The gauges read when Prometheus scrapes: what the deployment looks like now (queue, running reports,
workers) and whether the services a process needs answer.

A scrape never fails for want of Redis or the source: what cannot be read is left as it was and the
dependency shows 0, which is what the alerts watch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping

from hub.job import Status
from hub.metrics import DEPENDENCIES, DEPENDENCY_UP, JOBS_QUEUED, JOBS_RUNNING, QUEUE_OLDEST_WAIT, WORKERS_ALIVE
from hub.reports import Jobs
from hub.services import Core

READ_TIMEOUT_SECONDS = 3.0


def dependencies(outcome: Mapping[str, object]) -> None:
    """Sets `hub_dependency_up` from a readiness outcome (`{"redis": "ok", "source": "failed: ..."}`)."""
    for name, result in outcome.items():
        if name in DEPENDENCIES:
            DEPENDENCY_UP.labels(name).set(1 if result == "ok" else 0)


def core_checks(core: Core) -> dict[str, Awaitable[object]]:
    """The services every process needs: Redis, the source, the storage."""
    return {"redis": core.redis.ping(), "source": core.source.check(), "storage": core.storage.check()}


async def scrape(core: Core) -> None:
    """A worker's scrape: its dependencies checked now, and the deployment as every process sees it."""
    dependencies(await checked(core_checks(core)))
    await deployment(core.jobs)


async def checked(checks: Mapping[str, Awaitable[object]]) -> dict[str, str]:
    """Runs each check within the read timeout: "ok", or "failed" and why."""
    outcome = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, READ_TIMEOUT_SECONDS)
            outcome[name] = "ok"
        except Exception as exc:
            outcome[name] = f"failed: {type(exc).__name__}"
    return outcome


async def deployment(jobs: Jobs) -> None:
    """Queue depth, the oldest wait (on Redis's clock, as the sweeper judges it), reports running and
    workers alive, from the job records every hub and worker share."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            now = await jobs.redis_now_ms()
            records = await jobs.many([job_id for job_id, _ in await jobs.active()])
            queued = [job.submitted_at for job in records if job is not None and job.status == Status.SUBMITTED]
            JOBS_QUEUED.set(len(queued))
            QUEUE_OLDEST_WAIT.set(max(0, now - min(queued)) / 1000 if queued else 0)
            JOBS_RUNNING.set(sum(1 for job in records if job is not None and job.status == Status.PROCESSING))
            WORKERS_ALIVE.set(await jobs.workers_alive())
