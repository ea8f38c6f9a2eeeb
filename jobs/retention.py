"""Report files hold teachers' and children's personal data: none is kept past REPORT_RETENTION.

Each file is deleted by an arq cron job once it is older than the retention. The job's records in Redis
expire on their own an hour after that (`Settings.records_kept_seconds`), and from the moment the
retention is up the hub mints no link to the report (`Storage.expired`), even if this job has not run yet.

Every worker carries the cron job, so it runs while any worker lives. arq names each run by its scheduled
time and enqueues it under that id, so of all the workers that try, one enqueues it and one runs it. A
worker whose clock is more than a minute off may run a time again: a run only deletes what is past the
retention, so a second one finds nothing to do.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.cron import CronJob, cron

from hub.config import Settings
from jobs.report import Services

# Its name in arq's queue: enqueue a job by this name to run it now.
REMOVE_EXPIRED = "remove_expired_reports"
# How often it runs: the file of a report outlives its retention by at most this much (and no link to it
# is minted meanwhile). Each run is one listing of the reports, so it costs little to run often.
EVERY_MINUTES = 10
log = logging.getLogger(__name__)


async def remove_expired_reports(ctx: dict[str, Any]) -> int:
    settings: Settings = ctx["settings"]
    services: Services = ctx["services"]
    cutoff = datetime.now(UTC) - timedelta(seconds=settings.report_retention)
    removed = await services.storage.remove_older_than(cutoff)
    if removed:
        log.info("deleted %d report files older than REPORT_RETENTION (%d s)", removed, settings.report_retention)
    return removed


def retention_cron() -> CronJob:
    return cron(
        remove_expired_reports, name=REMOVE_EXPIRED, minute=set(range(0, 60, EVERY_MINUTES)), unique=True, max_tries=1
    )
