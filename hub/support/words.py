"""What support staff read: a job's outcome, a failure's reason and a timeline in words and times, beside
the codes programs use. Never a download link: support puts things right by sending the mentor a fresh one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.envelope import iso_or_none
from hub.job import Job, Status
from hub.source import Batch, Source

REASONS = {
    "NO_WORKER": "no report worker started it in time (the workers were down or all busy)",
    "TIMED_OUT": "making it took longer than allowed",
    "WORKER_LOST": "the worker making it stopped before it was done",
    "SOURCE_ERROR": "the course data could not be read",
    "STORAGE_ERROR": "the file could not be stored",
    "ENQUEUE_FAILED": "it could not be queued",
    "BATCH_NOT_FOUND": "the batch no longer exists",
    "INTERNAL_ERROR": "an unexpected error in the worker",
}
STATUS_WORDS = {
    Status.SUBMITTED: "Waiting for a worker",
    Status.PROCESSING: "Being made",
}
# Fields of an event that would let its reader fetch the file.
LINK_FIELDS = ("downloadUrl", "expiresAt")


def reason_words(code: str | None) -> str | None:
    return None if code is None else REASONS.get(code, f"failed ({code})")


def size_words(job: Job) -> str:
    parts = [f"{job.rows:,} rows" if job.rows is not None else "", f"{job.bytes / 1024:,.1f} KB" if job.bytes else ""]
    return ", ".join(part for part in parts if part)


def outcome(job: Job, expired: bool) -> str:
    if job.status == Status.FAILED:
        return f"Failed: {reason_words(job.error)}"
    if job.status == Status.SUCCESS:
        size = size_words(job)
        ready = f"Ready ({size})" if size else "Ready"
        return f"{ready}; the file has since been deleted, as every report is after a while" if expired else ready
    return STATUS_WORDS[job.status]


def without_links(event: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in event.items() if name not in LINK_FIELDS}


def event_words(event: dict[str, Any]) -> str:
    kind = event.get("type")
    words = {
        "report.submitted": "Report asked for; the mentor was told it had started",
        "report.completed": f"Report ready ({event.get('rows', 0):,} rows); the mentor was sent a link",
        "report.failed": f"Failed: {reason_words(event.get('reason'))}",
        "report.duplicate": "The mentor clicked again while it was being made, and was told so",
        "report.progress": f"Made {event.get('rows', 0):,} of {event.get('total', 0):,} rows",
    }.get(str(kind), str(kind))
    return f"{words} (sent again by support)" if event.get("replayed") else words


def timeline(events: list[dict[str, Any]], delivered: dict[str, int]) -> list[dict[str, Any]]:
    """The job's events in words, the last progress event standing for the others, each with how many of
    the mentor's sockets, streams and polls it reached."""
    progress = [event for event in events if event.get("type") == "report.progress"]
    shown = [event for event in events if event.get("type") != "report.progress" or event is progress[-1]]
    return [
        {
            "id": event["id"],
            "type": event["type"],
            "at": event.get("ts"),
            "words": event_words(event),
            "replayed": bool(event.get("replayed")),
            "delivered": delivered.get(event["id"], 0),
        }
        for event in shown
    ]


class Rows:
    """Jobs as search rows: names looked up once per batch and per mentor for a whole page."""

    def __init__(self, source: Source, expired: Callable[[Job], bool]) -> None:
        self._source = source
        self._expired = expired  # `Storage.expired`: whether a SUCCESS job's file has been deleted
        self._batches: dict[str, Batch | None] = {}
        self._names: dict[str, str | None] = {}

    async def row(self, job: Job) -> dict[str, Any]:
        if job.batch_id not in self._batches:
            self._batches[job.batch_id] = await self._source.batch(job.batch_id)
        if job.requested_by not in self._names:
            self._names[job.requested_by] = await self._source.user_name(job.requested_by)
        batch = self._batches[job.batch_id]
        expired = job.status == Status.SUCCESS and self._expired(job)

        return {
            "jobId": job.job_id,
            "ref": job.ref,
            "userId": job.requested_by,
            "mentorName": self._names[job.requested_by],
            "batchId": job.batch_id,
            "batchName": batch.name if batch else None,
            "courseId": job.course_id,
            "courseName": batch.course_name if batch else None,
            "status": job.status.value,
            "outcome": outcome(job, expired),
            "reason": job.error,
            "reasonWords": reason_words(job.error),
            "submittedAt": iso_or_none(job.submitted_at),
            "startedAt": iso_or_none(job.started_at),
            "completedAt": iso_or_none(job.completed_at),
            "rows": job.rows,
            "bytes": job.bytes,
            "size": size_words(job) or None,
            "fileName": job.file_name,
        }
