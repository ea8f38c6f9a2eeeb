"""Support staff's side of the hub: finding a mentor's job from what the mentor can say (a reference, their
id, the batch, the day), seeing what happened to it and to their refused clicks, putting it right, and a
trail of all that. Support never holds a download link: fixing things sends a fresh one to the mentor.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from hub.config import Settings
from hub.support.audit import Audit
from hub.support.deliveries import Deliveries
from hub.support.index import JobIndex
from hub.support.refusals import Refusals


@dataclass(frozen=True)
class Support:
    index: JobIndex
    refusals: Refusals
    audit: Audit
    deliveries: Deliveries


def open_support(redis: Redis, settings: Settings, job_kept_ms: int) -> Support:
    """`job_kept_ms`: how long a job's record lives at most (its run and then REPORT_RETENTION)."""
    return Support(
        index=JobIndex(redis, job_kept_ms),
        refusals=Refusals(redis, settings.records_kept_seconds),
        audit=Audit(redis, settings.audit_retention),
        deliveries=Deliveries(redis, settings.records_kept_seconds),
    )
