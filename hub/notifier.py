"""The notification bell: each report that ends is also sent to Sunbird's notification service as a
`feed` notification for its requester (`POST /v2/notification/send`), so the bell the portal and the app
already show has it, even with no socket open.

Sending never holds the report: it runs beside it, with retries and backoff, and a notification that
still fails is logged and dropped (the event log and the sockets have the news anyway).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub import keys, metrics, tasks
from hub.config import Settings
from hub.i18n import ENGLISH, text
from hub.job import Job, Status
from hub.source import Source, SourceError

log = logging.getLogger(__name__)
SEND_PATH = "/v2/notification/send"
# Seconds before each retry; after the last, the notification is dropped.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
ATTEMPT_TIMEOUT_SECONDS = 10
CATEGORY = "course-report"
SENDER = {"id": "course-report-hub", "name": "Course report hub", "type": "System"}
# The action the portal's and the app's notification handlers know for "open this link": `extURL` opens
# `additionalInfo.deepLink` (SunbirdEd-mobile-app `ActionType.EXT_URL`, `notification.service.ts`).
OPEN_LINK = "extURL"
# The notification service renders `template.data` with Velocity, `template.params` as its context. Text
# put into `data` would be read as Velocity (`$name`, `#if`), so the data names one reference, `${title}`,
# and the title goes in as a parameter: Velocity inserts a value as it is, never evaluating it again.
TEMPLATE_DATA = '{"title": "${title}"}'


def dashboard_link(settings: Settings, job: Job) -> str:
    """The batch's progress dashboard in the portal (the course's "batches" page with the batch chosen),
    where the report's state and a fresh download link are; the hub's own page without PORTAL_URL."""
    if settings.portal_url is None:
        return settings.public_url + "/"
    query = urlencode({"batchIdentifier": job.batch_id})
    return f"{settings.portal_url}/learn/course/{quote(job.course_id, safe='')}/dashboard/batches?{query}"


def feed_request(
    settings: Settings,
    job: Job,
    status: Status,
    reason: str | None,
    names: tuple[str, str],
    event: dict[str, Any],
    lang: str = ENGLISH,
) -> dict[str, Any]:
    """The notification service's request (`notification.json`) for one ended report. `names`: the course's
    and the batch's names; `event`: the job's last event, whose download link goes alongside; `lang`: the
    language of its title."""
    ready = status == Status.SUCCESS
    info = {
        "deepLink": dashboard_link(settings, job),
        "jobId": job.job_id,
        "batchId": job.batch_id,
        "courseId": job.course_id,
        "tag": f"{job.course_id}_{job.batch_id}",  # what the portal's on-demand reports table lists
        "fileName": job.file_name,
        "status": status.value,
        **({key: event[key] for key in ("downloadUrl", "expiresAt") if key in event} if ready else {}),
        **({} if ready else {"reason": reason or "UNKNOWN"}),
    }
    key = "hub.feed.ready" if ready else "hub.feed.failed"
    title = text(key, lang).format(courseName=names[0], batchName=names[1])
    notification = {
        "ids": [job.requested_by],
        "priority": 1,
        "type": "feed",
        "action": {
            "type": OPEN_LINK,
            "category": CATEGORY,
            "template": {
                "type": "JSON",
                "ver": "4.4.0",
                "data": TEMPLATE_DATA,
                # JSON-escaped: Velocity puts it between the quotes of `data` as it is.
                "params": {"title": orjson.dumps(title).decode()[1:-1], "batchId": job.batch_id},
            },
            "createdBy": SENDER,
            "additionalInfo": {**info, "messageKey": key},
        },
    }
    return {"request": {"notifications": [notification]}}


class Notifier:
    def __init__(self, settings: Settings, source: Source, redis: Redis) -> None:
        assert settings.notification_url is not None
        self._settings = settings
        self._source = source
        self._redis = redis
        self._url = settings.notification_url + SEND_PATH
        self._session: aiohttp.ClientSession | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def ended(self, job: Job, status: Status, reason: str | None, event: bytes) -> None:
        """Sends the notification in the background; the caller (a report, the sweeper) goes on at once."""
        task = asyncio.create_task(self._notify(job, status, reason, orjson.loads(event) if event else {}))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _names(self, job: Job) -> tuple[str, str]:
        """The course's and the batch's names, for people; their ids when the source cannot say."""
        try:
            batch = await self._source.batch(job.batch_id)
        except SourceError:
            batch = None
        return (batch.course_name, batch.name) if batch else (job.course_id, job.batch_id)

    async def _language(self, job: Job) -> str:
        """The requester's language, as their last socket or stream asked for it; English if none did."""
        try:
            lang = await self._redis.get(keys.user_language(job.requested_by))
        except RedisError:
            return ENGLISH
        return lang.decode() if lang else ENGLISH

    async def _notify(self, job: Job, status: Status, reason: str | None, event: dict[str, Any]) -> None:
        names, lang = await self._names(job), await self._language(job)
        body = feed_request(self._settings, job, status, reason, names, event, lang)
        await self._send(body, job.job_id)

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
        await asyncio.gather(*(tasks.stop(task) for task in list(self._sending)))
        if self._session is not None:
            await self._session.close()
