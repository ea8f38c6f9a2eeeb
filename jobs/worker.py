"""The arq worker that makes reports, built in one place (`create_worker`) for every way it runs:
`hub worker`, `hub dev`, the tests, and `arq jobs.worker.WorkerSettings`.

It checks the source and the storage before taking any job, so a wrong `SOURCE_URL` or
`STORAGE_URL` stops it at start with one line instead of failing every mentor's report later.
"""

from __future__ import annotations

from typing import Any

from arq import func
from arq.worker import Worker

from hub.config import Settings, load, require_link_secret, require_redis
from hub.connections import redis_settings
from hub.reports import JOB_FUNCTION
from hub.services import open_core
from jobs.parts import PartWriters
from jobs.report import Services, generate_report

# Reports one worker process makes at once; each is split over the part writers.
MAX_JOBS = 4
# arq polls its queue; the default half second would be most of a small report's latency.
POLL_DELAY_SECONDS = 0.05
# No arq results: nothing reads them, and a result keeps the job's arguments (a protected report's password).
KEEP_RESULT_SECONDS = 0


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    core = await open_core(settings, ctx["redis"])
    writers = PartWriters(settings.report_parts)
    await writers.start()
    ctx["services"] = Services(**core.parts(), writers=writers)


async def shutdown(ctx: dict[str, Any]) -> None:
    if "services" in ctx:
        ctx["services"].writers.close()
        await ctx["services"].close()


def worker_options(settings: Settings) -> dict[str, Any]:
    """arq's Worker arguments; the one description of a report worker."""
    require_link_secret(settings)
    return {
        "functions": [
            # arq's own timeout is a backstop: the job ends itself (report.failed) before it.
            func(
                generate_report,
                name=JOB_FUNCTION,
                timeout=settings.report_timeout + 5,
                max_tries=settings.max_tries,
            ),
        ],
        "redis_settings": redis_settings(require_redis(settings)),
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
    return Worker(**worker_options(settings), handle_signals=handle_signals)


def __getattr__(name: str) -> Any:
    """`arq jobs.worker.WorkerSettings` reads the environment only when the worker starts."""
    if name == "WorkerSettings":
        return type("WorkerSettings", (), worker_options(load()))
    raise AttributeError(name)
