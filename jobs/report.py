"""Making one course progress report: rows from the source, CSV or XLSX bytes, one stored object, and
the events that tell the mentor how it is going.

The job is safe to run again: arq re-runs it when a worker dies part-way, and a job that already
ended is left as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_errors
from redis.exceptions import RedisError

from hub import events, logs, metrics, tasks
from hub.job import Job, Secret, Status
from hub.reports import Jobs, Outcome, now_ms
from hub.services import Core
from hub.source import SourceError, retrying
from hub.source.schema import HEADER, csv_writer, formula_safe
from hub.storage import StorageError
from jobs.archive import encrypted_zip
from jobs.parts import PartWriters, Tally, in_order
from jobs.xlsx import SHEET_ROWS, workbook
from jobs.zipstream import TooLarge

log = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 0.5
HEARTBEAT_EVERY_SECONDS = 2.0
# A job whose liveness is not renewed within this long is released to another worker (see hub.sweeper).
ALIVE_MS = 10_000
BOM = "\ufeff"
# What a Redis outage or failover looks like from here (redis-py turns a connection lost under WATCH into a
# WatchError; a primary just demoted refuses writes with READONLY).
REDIS_AWAY = (
    redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.WatchError, redis_errors.ReadOnlyError,
    OSError,
)  # fmt: skip


@dataclass
class Services(Core):
    """The worker's services: the core it shares with the hub, and its pool of part writers."""

    writers: PartWriters


class ReportFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def header(assessments: Sequence[str]) -> list[str]:
    return [*HEADER, *(f"{content_id} - Score" for content_id in assessments)]


def header_line(assessments: Sequence[str]) -> bytes:
    """The byte-order mark (so Excel reads Devanagari names right) and the header row."""
    text = io.StringIO(BOM)
    text.seek(len(BOM))
    csv_writer(text).writerow([formula_safe(name) for name in header(assessments)])
    return text.getvalue().encode()


@dataclass(frozen=True)
class Run:
    """One worker's attempt at a job: the token its changes carry (so a re-sent change is known as its own
    and a replaced run's changes are refused, see `lua/transition.lua`), and the job's deadline on this
    event loop's clock, until which its ending is retried."""

    job: Job
    token: str
    until: float


class Progress:
    """Tells the mentor how far along the report is, at most twice a second. Best effort: a progress event
    that Redis does not take is skipped, never the report's failure (only its ending is retried)."""

    def __init__(self, jobs: Jobs, run: Run, total: int) -> None:
        self._jobs = jobs
        self._run = run
        self.total = total
        self.rows = 0
        self._last = time.monotonic()

    async def advance(self, rows: int) -> None:
        self.rows += rows
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY_SECONDS:
            return
        self._last = now
        percent = min(99, self.rows * 100 // self.total) if self.total else 0
        job = self._run.job
        event = events.draft(
            "report.progress", job.job_id, job.batch_id, rows=self.rows, total=self.total, percent=percent,
        )  # fmt: skip
        try:
            await self._jobs.transition(job, event=event, run=self._run.token, rows=self.rows)
        except RedisError as exc:
            log.warning("report %s: a progress event was not stored (%s); the report carries on", job.job_id, exc)


async def _write(services: Services, run: Run, key: str, secret: Secret | None) -> tuple[int, int]:
    job = run.job
    source = services.source
    batch = await source.batch(job.batch_id)
    if batch is None:
        raise ReportFailed("BATCH_NOT_FOUND")
    assessments = await source.assessments(batch.course_id)
    tally = Tally(total=await source.participant_count(batch.batch_id))
    progress = Progress(services.jobs, run, tally.total)

    settings = services.settings
    spreadsheet = job.format == "xlsx"
    async with services.writers.parts(
        source, settings.source_url, settings.report_zone, batch.batch_id, assessments, tally.total,
        SHEET_ROWS if spreadsheet else 0,
    ) as parts:  # fmt: skip
        if spreadsheet:
            body = workbook(header(assessments), parts, progress.advance, tally)
        else:
            body = _csv(assessments, in_order(parts, tally), progress)
        if secret is not None:
            body = encrypted_zip(body, job.report_name, secret.value, settings.zip_encryption)
        size = await services.storage.put(key, body, job.file_name)
    return tally.rows, size


async def _csv(assessments: Sequence[str], rows: AsyncIterator[bytes], progress: Progress) -> AsyncIterator[bytes]:
    yield header_line(assessments)
    async for chunk in rows:
        yield chunk
        # Line ends count rows closely enough for a progress bar (a cell may hold a line break).
        await progress.advance(chunk.count(b"\n"))


async def _heartbeat(jobs: Jobs, run: Run) -> None:
    """Proof of life for the sweeper, on Redis's clock: a key that expires unless renewed. A job whose
    liveness lapses for good is handed to another worker. A Redis hiccup skips a beat rather than ending
    the heartbeat for good."""
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)
        with contextlib.suppress(RedisError):
            await jobs.transition(run.job, alive_ms=ALIVE_MS, run=run.token)


async def _end(run: Run, change: Callable[[], Awaitable[Outcome]]) -> Outcome | None:
    """The run's ending, tried again while Redis is away (a failover, a restart) until the job's deadline;
    a re-sent ending that had been applied answers `Outcome.ALREADY`. None when Redis never answered: the
    ending may have been applied, so nothing it may have announced is touched."""
    try:
        return await retrying(change, run.until, f"report {run.job.job_id}: its ending", REDIS_AWAY)
    except REDIS_AWAY as exc:
        log.error("report %s: its ending could not be stored before its deadline: %s", run.job.job_id, exc)
        return None


async def _make(services: Services, run: Run, secret: Secret | None) -> None:
    """One run of a job, into a key of its own (`Job.run_key`); a source that is only unavailable for a
    moment (a restart, a dropped connection) is tried again within the job's deadline."""
    job = run.job
    key = job.run_key()
    deadline = asyncio.get_running_loop().time() + services.settings.report_timeout
    async with asyncio.timeout_at(deadline):
        rows, size = await retrying(lambda: _write(services, run, key, secret), deadline, f"report {job.job_id}")
    url, expires_at = await services.storage.download_url(job.job_id, key)
    completed = events.draft(
        "report.completed", job.job_id, job.batch_id, downloadUrl=url, expiresAt=expires_at,
        fileName=job.file_name, rows=rows, bytes=size,
    )  # fmt: skip
    outcome = await _end(run, lambda: services.jobs.transition(
        job, Status.SUCCESS, completed, run=run.token, completedAt=now_ms(), rows=rows, bytes=size, key=key,
    ))  # fmt: skip
    if outcome in (Outcome.ENDED, Outcome.SUPERSEDED):
        # Refused, so never announced: the job ended otherwise, or another run holds it.
        await services.storage.delete(key)
        log.warning("report %s: %s; this run's file was removed", job.job_id, outcome.name.lower())
        return
    log.info("report %s made: %d rows, %d bytes", job.job_id, rows, size)
    metrics.made(rows, size, job.submitted_at)


async def generate_report(
    ctx: dict[str, Any], job_id: str, secret: Secret | None = None, record: dict[str, str] | None = None
) -> str:
    """`secret` is a protected report's password, which lives in the arq job's arguments only; `record` is
    the job as the hub first wrote it, to write anew should Redis have lost it."""
    with logs.bound(jobId=job_id), metrics.WORKER_JOBS_RUNNING.track_inprogress():
        return await _generate(ctx, job_id, secret, record)


async def _generate(ctx: dict[str, Any], job_id: str, secret: Secret | None, record: dict[str, str] | None) -> str:
    services: Services = ctx["services"]
    jobs = services.jobs
    job = await jobs.get(job_id)
    if job is None and record is not None:
        log.warning("report %s: its record is gone from Redis; written anew from the queued job", job_id)
        job = Job.decode({name.encode(): value.encode() for name, value in record.items()})
    if job is None:
        return "unknown job"
    if job.status.ended:
        return f"already {job.status}"
    left_ms = job.submitted_at + jobs.deadline_ms - await jobs.redis_now_ms()
    run = Run(job, uuid.uuid4().hex, asyncio.get_running_loop().time() + left_ms / 1000)
    started = await jobs.transition(job, Status.PROCESSING, alive_ms=ALIVE_MS, run=run.token, startedAt=now_ms())
    if not started.applied:
        return f"not started: {started.name}"
    heartbeat = asyncio.create_task(_heartbeat(jobs, run))
    try:
        await _make(services, run, secret)
        return Status.SUCCESS.value
    except ReportFailed as failure:
        reason = failure.reason
    except SourceError as exc:
        log.warning("report %s: source failed: %s", job_id, exc)
        reason = "SOURCE_ERROR"
    except StorageError as exc:
        log.warning("report %s: storage failed: %s", job_id, exc)
        reason = "STORAGE_ERROR"
    except TimeoutError:
        reason = "TIMED_OUT"
    except TooLarge as exc:
        log.warning("report %s: %s", job_id, exc)
        reason = "REPORT_TOO_LARGE"
    except Exception:
        log.exception("report %s failed", job_id)
        reason = "INTERNAL_ERROR"
    finally:
        with contextlib.suppress(Exception):  # a lost beat is the sweeper's to judge, not this run's ending
            await tasks.stop(heartbeat)
    await _end(run, lambda: jobs.fail(job, reason, run=run.token))
    return reason
