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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from hub import events, logs
from hub.job import Job, Secret, Status
from hub.reports import Jobs, now_ms
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


class Progress:
    """Tells the mentor how far along the report is, at most twice a second."""

    def __init__(self, jobs: Jobs, job: Job, total: int) -> None:
        self._jobs = jobs
        self._job = job
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
        event = events.draft(
            "report.progress", self._job.job_id, self._job.batch_id, rows=self.rows, total=self.total,
            percent=percent,
        )  # fmt: skip
        await self._jobs.transition(self._job, event=event, rows=self.rows)


async def _write(services: Services, job: Job, key: str, secret: Secret | None) -> tuple[int, int]:
    source = services.source
    batch = await source.batch(job.batch_id)
    if batch is None:
        raise ReportFailed("BATCH_NOT_FOUND")
    assessments = await source.assessments(batch.course_id)
    tally = Tally(total=await source.participant_count(batch.batch_id))
    progress = Progress(services.jobs, job, tally.total)

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


async def _heartbeat(jobs: Jobs, job: Job) -> None:
    """Proof of life for the sweeper, on Redis's clock: a key that expires unless renewed. A job whose
    liveness lapses is handed to another worker. A Redis hiccup skips a beat rather than ending the
    heartbeat for good."""
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)
        with contextlib.suppress(RedisError):
            await jobs.transition(job, alive_ms=ALIVE_MS)


async def _make(services: Services, job: Job, secret: Secret | None) -> None:
    """One run of a job, into a key of its own (`Job.run_key`); a source that is only unavailable for a
    moment (a restart, a dropped connection) is tried again within the job's deadline."""
    key = job.run_key()
    deadline = asyncio.get_running_loop().time() + services.settings.report_timeout
    async with asyncio.timeout_at(deadline):
        rows, size = await retrying(lambda: _write(services, job, key, secret), deadline, f"report {job.job_id}")
    url, expires_at = await services.storage.download_url(job.job_id, key)
    completed = events.draft(
        "report.completed", job.job_id, job.batch_id, downloadUrl=url, expiresAt=expires_at,
        fileName=job.file_name, rows=rows, bytes=size,
    )  # fmt: skip
    if not await services.jobs.transition(
        job, Status.SUCCESS, completed, completedAt=now_ms(), rows=rows, bytes=size, key=key
    ):
        await services.storage.delete(key)  # the job had already ended: this file was never announced
        log.warning("report %s had already ended; its new file was removed", job.job_id)
        return
    log.info("report %s made: %d rows, %d bytes", job.job_id, rows, size)


async def generate_report(ctx: dict[str, Any], job_id: str, secret: Secret | None = None) -> str:
    """`secret` is a protected report's password, which lives in the arq job's arguments only."""
    with logs.bound(jobId=job_id):
        return await _generate(ctx, job_id, secret)


async def _generate(ctx: dict[str, Any], job_id: str, secret: Secret | None) -> str:
    services: Services = ctx["services"]
    jobs = services.jobs
    job = await jobs.get(job_id)
    if job is None:
        return "unknown job"
    if job.status.ended:
        return f"already {job.status}"
    await jobs.transition(job, Status.PROCESSING, alive_ms=ALIVE_MS, startedAt=now_ms())
    heartbeat = asyncio.create_task(_heartbeat(jobs, job))
    try:
        await _make(services, job, secret)
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
        heartbeat.cancel()
    await jobs.fail(job, reason)
    return reason
