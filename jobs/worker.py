"""The arq worker that makes reports, built in one place (`create_worker`) for every way it runs:
`hub worker`, `hub dev`, the tests, and `arq jobs.worker.WorkerSettings`.

It checks the source and the storage before taking any job, so a wrong `SOURCE_URL` or
`STORAGE_URL` stops it at start with one line instead of failing every mentor's report later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import uuid
from typing import Any

from arq import func
from arq.worker import Worker

from hub import tasks
from hub.config import ConfigError, Settings, load, require_link_secret, require_redis
from hub.connections import patient_client
from hub.metrics import WORKER_JOB_SLOTS, collect, exposition
from hub.reports import JOB_FUNCTION, deadline_ms
from hub.services import open_core
from jobs.parts import PartWriters
from jobs.report import REDIS_AWAY, Services, generate_report
from jobs.retention import retention_cron

# Reports one worker process makes at once; each is split over the part writers.
MAX_JOBS = 4
# arq polls its queue; the default half second would be most of a small report's latency.
POLL_DELAY_SECONDS = 0.05
# No arq results: nothing reads them, and a result keeps the job's arguments (a protected report's password).
KEEP_RESULT_SECONDS = 0
# A worker counts as alive (for /readyz, /metrics) while it registers at least this often.
REGISTER_EVERY_SECONDS = 2.0
ALIVE_FOR_MS = 10_000
# How long the worker waits between looks at its queue while Redis is away, at most.
OUTAGE_BACKOFF_CAP_SECONDS = 5.0
# A half-written local upload untouched this long after a run's time is up was left by a killed worker.
ABANDONED_UPLOAD_MARGIN_SECONDS = 60
log = logging.getLogger(__name__)


class ReportWorker(Worker):
    """arq's worker, made to ride out a Redis outage of any length.

    arq's poll loop ends the worker at the first Redis error that outlasts a command's retries, and a
    Redis error in its job bookkeeping leaves a slot taken for good. Here a failed poll is logged once,
    waited out with backoff, and the loop carries on; jobs queued before or during the outage run when it
    ends.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._away_since: float | None = None
        self._backoff = POLL_DELAY_SECONDS

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_AWAY as exc:
            if self._away_since is None:
                self._away_since = asyncio.get_running_loop().time()
                log.warning("Redis is away (%s); jobs wait until it is back", exc)
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, OUTAGE_BACKOFF_CAP_SECONDS)
            return
        if self._away_since is not None:
            away = asyncio.get_running_loop().time() - self._away_since
            log.warning("Redis is back after %.0fs; taking jobs again", away)
            self._away_since = None
            self._backoff = POLL_DELAY_SECONDS

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """One job at a time, so a Redis error between taking a slot and starting the job gives the slot
        back (arq would keep it taken, and the worker would take fewer jobs after every outage)."""
        for job_id in job_ids:
            counted = self.job_counter
            try:
                await super().start_jobs([job_id])
            except REDIS_AWAY:
                if self.job_counter > counted and job_id.decode() not in self.tasks:
                    self.job_counter -= 1
                    self.sem.release()
                raise


async def _stay_registered(services: Services, worker_id: str) -> None:
    while True:
        with contextlib.suppress(*REDIS_AWAY):
            await services.jobs.register_worker(worker_id, ALIVE_FOR_MS)
        await asyncio.sleep(REGISTER_EVERY_SECONDS)


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    core = await open_core(settings, ctx["redis"])
    idle = settings.report_timeout + ABANDONED_UPLOAD_MARGIN_SECONDS
    await asyncio.to_thread(core.storage.remove_abandoned_uploads, idle)
    writers = PartWriters(settings)
    await writers.start()
    services = Services(**core.parts(), writers=writers)
    ctx["services"] = services
    ctx["worker_id"] = uuid.uuid4().hex
    ctx["registration"] = asyncio.create_task(_stay_registered(services, ctx["worker_id"]))
    WORKER_JOB_SLOTS.set(MAX_JOBS)
    if settings.metrics_port:
        ctx["metrics"] = await exposition.serve(settings.host, settings.metrics_port, lambda: collect.scrape(services))


async def shutdown(ctx: dict[str, Any]) -> None:
    if "metrics" in ctx:
        await ctx["metrics"].cleanup()
    if "registration" in ctx:
        await tasks.stop(ctx["registration"])
        with contextlib.suppress(*REDIS_AWAY):
            await ctx["services"].jobs.unregister_worker(ctx["worker_id"])
    if "services" in ctx:
        ctx["services"].writers.close()
        await ctx["services"].close()


def worker_options(settings: Settings) -> dict[str, Any]:
    """arq's Worker arguments; the one description of a report worker."""
    require_link_secret(settings)
    return {
        "functions": [
            # arq's own timeout is a backstop: a run's writing ends itself at REPORT_TIMEOUT, and its ending
            # is retried while Redis is away until the job's deadline, which arq must not cut short.
            func(
                generate_report,
                name=JOB_FUNCTION,
                timeout=deadline_ms(settings) / 1000,
                max_tries=settings.max_tries,
            ),
        ],
        "cron_jobs": [retention_cron()],
        # Built here, not by arq: arq's own Sentinel path drops the retry settings.
        "redis_pool": patient_client(settings.with_(redis_url=require_redis(settings))),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"settings": settings},
        "max_jobs": MAX_JOBS,
        "poll_delay": POLL_DELAY_SECONDS,
        "keep_result": KEEP_RESULT_SECONDS,
    }


def create_worker(settings: Settings, handle_signals: bool = True) -> Worker:
    """A worker of its own process handles SIGINT and SIGTERM; one sharing a process (`hub dev`, the
    tests) leaves signals to its host."""
    return ReportWorker(**worker_options(settings), handle_signals=handle_signals)


def __getattr__(name: str) -> Any:
    """`arq jobs.worker.WorkerSettings` reads the environment only when the worker starts; a wrong setting
    stops it with one line, as `hub worker` does. (arq's own worker class runs then: `hub worker` is the
    one that rides out Redis outages.)"""
    if name == "WorkerSettings":
        try:
            return type("WorkerSettings", (), worker_options(load()))
        except ConfigError as exc:
            print(f"arq jobs.worker.WorkerSettings: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    raise AttributeError(name)
