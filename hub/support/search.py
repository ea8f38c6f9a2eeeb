"""`GET /v1/support/jobs`: finding a mentor's job from what the mentor can tell support (a reference read
off a toast, who they are, which batch, which day), newest first, a page at a time.

The narrowest index that applies is read (reference, then user, then batch, then the days of the range);
the other criteria filter what it yields. A page examines at most `MAX_EXAMINED` jobs, so a search for a
rare status over a busy week answers quickly with a cursor to go on from, instead of reading everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hub import errors, ids, keys
from hub.job import REF_ALPHABET, REF_LENGTH, Job, Status
from hub.reports import Jobs
from hub.support.index import JobIndex, day_of

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
MAX_EXAMINED = 2000
READ_AHEAD = 100
REF = re.compile(f"[{REF_ALPHABET}]{{{REF_LENGTH}}}")
REASON = re.compile(r"[A-Z][A-Z_]{0,39}")
CURSOR = re.compile(r"([0-9]{1,15})-([0-9a-f]{32})")
MAX_USER_ID = 200


@dataclass(frozen=True)
class Query:
    ref: str | None
    user_id: str | None
    batch_id: str | None
    low: int  # submitted at or after (ms)
    high: int  # submitted at or before (ms)
    status: Status | None
    reason: str | None
    limit: int
    after: tuple[int, str] | None  # the cursor: the last job of the previous page, as (submitted ms, id)

    def index(self) -> list[str]:
        if self.ref:
            return [keys.support_by_ref(self.ref)]
        if self.user_id:
            return [keys.support_by_user(self.user_id)]
        if self.batch_id:
            return [keys.support_by_batch(self.batch_id)]
        return [keys.support_by_day(day) for day in range(day_of(self.high), day_of(self.low) - 1, -1)]

    @property
    def exact(self) -> bool:
        """Whether every job the index names (and still exists) matches: then a page reads no more jobs than
        it shows."""
        return (
            self.status is None and self.reason is None and sum(map(bool, (self.ref, self.user_id, self.batch_id))) <= 1
        )

    def matches(self, job: Job) -> bool:
        return (
            (self.ref is None or job.ref == self.ref)
            and (self.user_id is None or job.requested_by == self.user_id)
            and (self.batch_id is None or job.batch_id == self.batch_id)
            and (self.status is None or job.status == self.status)
            and (self.reason is None or job.error == self.reason)
        )


def bad(detail: str) -> errors.HubError:
    return errors.INVALID_SEARCH(detail=detail)


def normal_ref(value: str) -> str:
    """What a mentor reads out, as typed: any case, with spaces or dashes between groups."""
    ref = re.sub(r"[\s-]", "", value).upper()
    if not REF.fullmatch(ref):
        raise bad(f"'ref' must be a job's {REF_LENGTH}-character reference, like 7KQ3M9XA.")
    return ref


def day_bound(value: str, name: str, zone: ZoneInfo, end: bool) -> int:
    try:
        day = date.fromisoformat(value)
        start = datetime.combine(day + timedelta(days=1) if end else day, time(), zone)
    except (ValueError, OverflowError):  # not a day; the last day there is
        raise bad(f"'{name}' must be a day, like 2026-11-24.") from None
    return int(start.timestamp() * 1000) - (1 if end else 0)


def page_limit(value: str | None, default: int, maximum: int) -> int:
    """How many rows a page may have, as asked in a query (a few digits: `int` refuses thousands of them)."""
    limit = value or str(default)
    if not (len(limit) <= len(str(maximum)) and limit.isascii() and limit.isdigit() and 1 <= int(limit) <= maximum):
        raise bad(f"'limit' must be a whole number from 1 to {maximum}.")
    return int(limit)


def parse(query: Mapping[str, str], zone: ZoneInfo, now_ms: int, kept_ms: int) -> Query:
    """The search's criteria; `from` and `to` are days in the mentors' time zone (REPORT_TIMEZONE), both
    included. Without them, every job still kept is searched."""
    unknown = set(query) - {"ref", "userId", "batchId", "from", "to", "status", "reason", "limit", "cursor"}
    if unknown:
        raise bad(f"Unknown search field '{sorted(unknown)[0]}'.")
    user_id = query.get("userId") or None
    if user_id is not None and len(user_id) > MAX_USER_ID:
        raise bad(f"'userId' must be at most {MAX_USER_ID} characters.")
    status = query.get("status") or None
    if status is not None and status not in Status.__members__:
        raise bad(f"'status' must be one of {', '.join(Status.__members__)}.")
    reason = query.get("reason") or None
    if reason is not None and not REASON.fullmatch(reason):
        raise bad("'reason' must be a failure code, like NO_WORKER.")
    cursor = query.get("cursor") or None
    after = CURSOR.fullmatch(cursor) if cursor else None
    if cursor and after is None:
        raise bad("'cursor' must be one this search gave out.")
    since = day_bound(query["from"], "from", zone, end=False) if query.get("from") else 0
    until = day_bound(query["to"], "to", zone, end=True) if query.get("to") else now_ms
    if until < since:
        raise bad("'from' must not be after 'to'.")
    # Nothing older than the oldest job still kept can be found: a range before it finds nothing.
    low, high = max(since, now_ms - kept_ms), min(until, now_ms)
    return Query(
        ref=normal_ref(query["ref"]) if query.get("ref") else None,
        user_id=user_id,
        batch_id=ids.batch_id(query["batchId"]) if query.get("batchId") else None,
        low=low,
        high=high,
        status=Status(status) if status else None,
        reason=reason,
        limit=page_limit(query.get("limit"), DEFAULT_LIMIT, MAX_LIMIT),
        after=(int(after.group(1)), after.group(2)) if after else None,
    )


async def search(index: JobIndex, jobs: Jobs, query: Query) -> tuple[list[Job], str | None]:
    """A page of matching jobs, newest first, and the cursor of the next page (None after the last)."""
    found: list[Job] = []
    examined = 0
    waiting: list[tuple[str, int]] = []
    high = min(query.high, query.after[0]) if query.after else query.high

    async def take(candidates: list[tuple[str, int]]) -> str | None:
        nonlocal examined
        for (job_id, submitted), job in zip(candidates, await jobs.many([c[0] for c in candidates]), strict=True):
            examined += 1
            if job is not None and query.matches(job):
                found.append(job)
            if len(found) == query.limit or examined == MAX_EXAMINED:
                return f"{submitted}-{job_id}"
        return None

    async for job_id, submitted in index.walk(query.index(), query.low, high):
        if query.after and (submitted, job_id) >= query.after:
            continue
        waiting.append((job_id, submitted))
        wanted = query.limit - len(found) if query.exact else READ_AHEAD
        if len(waiting) >= min(wanted, MAX_EXAMINED - examined):
            if cursor := await take(waiting):
                return found, cursor
            waiting = []
    if waiting and (cursor := await take(waiting)):
        return found, cursor
    return found, None
