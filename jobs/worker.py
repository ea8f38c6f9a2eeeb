"""The arq worker that makes reports. Run it with `hub worker`, or `arq jobs.worker.WorkerSettings`.

It checks the source and the storage before taking any job, so a wrong `SOURCE_URL` or
`STORAGE_URL` stops it at start with one line instead of failing every mentor's report later.
"""

from __future__ import annotations

from typing import Any

from arq import func

from hub.config import ConfigError, Settings, load, require_link_secret, require_redis
from hub.connections import redis_settings
from hub.events import EventLog
from hub.reports import JOB_FUNCTION, Jobs
from hub.source import SourceError, open_source
from hub.storage import Storage
from jobs.parts import PartWriters
from jobs.report import Services, generate_report


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    source = open_source(settings.source_url, settings.source_timeout)
    try:
        await source.check()
    except SourceError as exc:
        raise ConfigError(f"SOURCE_URL cannot be read: {exc}") from None
    storage = Storage(settings)
    try:
        await storage.check()
    except Exception as exc:
        raise ConfigError(f"STORAGE_URL cannot be used: {exc}") from None
    jobs = Jobs(ctx["redis"], EventLog(ctx["redis"], settings.event_retention), storage,
                settings.report_timeout, settings.max_tries)  # fmt: skip
    writers = PartWriters(settings)
    await writers.start()
    ctx["services"] = Services(settings=settings, jobs=jobs, source=source, storage=storage, writers=writers)


async def shutdown(ctx: dict[str, Any]) -> None:
    if "services" in ctx:
        ctx["services"].writers.close()
        await ctx["services"].source.close()


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of arq's Worker; `hub worker`, `hub dev` and the tests share them."""
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
        "max_jobs": 4,
        # arq polls its queue; the default half second would be most of a small report's latency.
        "poll_delay": 0.05,
        "keep_result": 3600,
        "handle_signals": True,
    }


def __getattr__(name: str) -> Any:
    """`arq jobs.worker.WorkerSettings` reads the environment only when the worker starts."""
    if name == "WorkerSettings":
        return type("WorkerSettings", (), worker_options(load()))
    raise AttributeError(name)
