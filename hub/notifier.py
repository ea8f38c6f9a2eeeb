"""The notification bell: each report that ends is also sent to Sunbird's notification service as a
`feed` notification for its requester (`POST /v2/notification/send`), so the bell the portal and the app
already show has it, even with no socket open.

Sending never holds the report: it runs beside it, with retries and backoff, and a notification that
still fails is logged and dropped (the event log and the sockets have the news anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import orjson

from hub import metrics
from hub.events import MESSAGES
from hub.job import Job, Status

log = logging.getLogger(__name__)
SEND_PATH = "/v2/notification/send"
# Seconds before each retry; after the last, the notification is dropped.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
ATTEMPT_TIMEOUT_SECONDS = 10
CATEGORY = "course-report"
SENDER = {"id": "course-report-hub", "name": "Course report hub", "type": "System"}


def feed_request(job: Job, status: Status, reason: str | None) -> dict[str, Any]:
    """The notification service's request (`notification_request.json`) for one ended report."""
    ready = status == Status.SUCCESS
    info = {
        "jobId": job.job_id,
        "batchId": job.batch_id,
        "courseId": job.course_id,
        "tag": f"{job.course_id}_{job.batch_id}",  # what the portal's on-demand reports table lists
        "fileName": job.file_name,
        "status": status.value,
        **({} if ready else {"reason": reason or "UNKNOWN"}),
    }
    title = MESSAGES["report.completed" if ready else "report.failed"]
    notification = {
        "ids": [job.requested_by],
        "priority": 1,
        "type": "feed",
        "action": {
            "type": "course-report-ready" if ready else "course-report-failed",
            "category": CATEGORY,
            "template": {
                "type": "JSON",
                "ver": "4.4.0",
                "data": orjson.dumps({"title": title}).decode(),
                "params": {"batchId": job.batch_id, "fileName": job.file_name},
            },
            "createdBy": SENDER,
            "additionalInfo": info,
        },
    }
    return {"request": {"notifications": [notification]}}


class Notifier:
    def __init__(self, base_url: str) -> None:
        self._url = base_url + SEND_PATH
        self._session: aiohttp.ClientSession | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def ended(self, job: Job, status: Status, reason: str | None) -> None:
        """Sends the notification in the background; the caller (a report, the sweeper) goes on at once."""
        task = asyncio.create_task(self._send(feed_request(job, status, reason), job.job_id))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, body: dict[str, Any], job_id: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT_SECONDS))
        payload = orjson.dumps(body)
        for delay in (*RETRY_DELAYS, None):
            try:
                async with self._session.post(
                    self._url, data=payload, headers={"Content-Type": "application/json"}
                ) as response:
                    if response.status < 300:
                        metrics.NOTIFICATIONS_SENT.inc()
                        return
                    if 400 <= response.status < 500 and response.status not in (408, 429):
                        log.warning("notification for job %s refused: HTTP %s", job_id, response.status)
                        metrics.NOTIFICATIONS_FAILED.labels("refused").inc()
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if delay is None:
                break
            metrics.NOTIFICATION_RETRIES.inc()
            await asyncio.sleep(delay)
        metrics.NOTIFICATIONS_FAILED.labels("dropped").inc()
        log.warning("notification for job %s dropped after %d attempts", job_id, len(RETRY_DELAYS) + 1)

    async def close(self) -> None:
        for task in list(self._sending):
            task.cancel()
        for task in list(self._sending):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
