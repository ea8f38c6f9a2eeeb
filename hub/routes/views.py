"""The contract's shapes of things, built where answers are built."""

from __future__ import annotations

from typing import Any

from hub import errors
from hub.envelope import iso_or_none
from hub.job import Job, Status
from hub.storage import Storage


async def job_view(job: Job, storage: Storage, with_link: bool = True) -> dict[str, Any]:
    """A job as `GET /v1/reports/jobs/{jobId}` shows it; a SUCCESS job gets a freshly minted link at every
    read, since the one in its `report.completed` event has expired by now. Once its report has been
    deleted (REPORT_RETENTION) it stays SUCCESS, with no link and the error REPORT_EXPIRED. Support staff
    reading a mentor's job get no link (`with_link` False): the file is the mentor's participants' data."""
    url, expires_at = (await storage.report_link(job) if with_link else None) or (None, None)
    expired = job.status == Status.SUCCESS and storage.expired(job)

    return {
        "jobId": job.job_id,
        "ref": job.ref,
        "batchId": job.batch_id,
        "requestedBy": job.requested_by,
        "status": job.status.value,
        "submittedAt": iso_or_none(job.submitted_at),
        "startedAt": iso_or_none(job.started_at),
        "completedAt": iso_or_none(job.completed_at),
        "rows": job.rows,
        "bytes": job.bytes,
        "fileName": job.file_name,
        "downloadUrl": url,
        "expiresAt": expires_at,
        "error": errors.REPORT_EXPIRED.code if expired else job.error,
    }
