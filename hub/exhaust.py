"""Sunbird's data-exhaust API in the hub's terms: what a request body asks for, the request id Sunbird
derives from it, where requests are kept, and a job as the analytics service shows it.

The portal and the mobile app ask for on-demand reports through the analytics service
(`/dataset/v1/request/*`), so the hub answers those routes with the same bodies, ids and shapes: a
client written against the analytics service works against the hub unchanged. Each request is a hub job
underneath (the same guard, events and timeline as a click); this module keeps only what Sunbird's
answers need beside the job: the tag, the channel, the dataset and how often the request was run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from redis.asyncio import Redis

from hub import errors, keys, scripts
from hub.envelope import now_iso, optional_string, response_code
from hub.errors import HubError
from hub.events import MESSAGES
from hub.job import Job, Status
from hub.reports import Jobs, now_ms
from hub.storage import Storage

SUBMIT = "ekstep.analytics.dataset.request.submit"
READ = "ekstep.analytics.dataset.request.info"
LIST = "ekstep.analytics.dataset.request.list"
SEARCH = "ekstep.analytics.dataset.request.search"
# Datasets the hub makes; Sunbird's others (response-exhaust, userinfo-exhaust) answer 400 until built.
DATASETS = ("progress-exhaust",)
SEARCH_FILTERS = ("dataset", "status", "channel", "requestedDate")
LIST_LIMIT = 10
MAX_LIMIT = 100
# Requests an index keeps: a tag's (what the portal's table shows) and a channel's (what search reads).
TAG_REQUESTS = 100
CHANNEL_REQUESTS = 1000
# The longest password a request may carry (the portal asks for at least 6 letters and digits).
MAX_KEY_LENGTH = 100
LOCK_SECONDS = 10
LOCK_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Asked:
    """A submit request's body, checked in the order (and with the words) the analytics service uses."""

    tag: str
    dataset: str
    batch_id: str
    dataset_config: dict[str, Any]
    encryption_key: str | None


def _text(data: dict[str, Any], name: str, label: str | None = None) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise errors.EXHAUST_FIELD_EMPTY(name=label or name)
    return value.strip()


def request_object(body: dict[str, Any]) -> dict[str, Any]:
    inner = body.get("request")
    if not isinstance(inner, dict) or not inner:
        raise errors.EXHAUST_FIELD_EMPTY(name="request")
    return inner


def parse_submit(body: dict[str, Any]) -> Asked:
    asked = request_object(body)
    tag = _text(asked, "tag")
    dataset = _text(asked, "dataset")
    config = asked.get("datasetConfig")
    if not isinstance(config, dict) or not config:
        raise errors.EXHAUST_FIELD_EMPTY(name="datasetConfig")
    if dataset not in DATASETS:
        raise errors.DATASET_NOT_SUPPORTED(dataset=dataset, supported=", ".join(DATASETS))
    output_format = asked.get("output_format", "csv")
    if output_format != "csv":
        raise errors.FORMAT_NOT_SUPPORTED(value=output_format)
    return Asked(
        tag=tag,
        dataset=dataset,
        batch_id=_text(config, "batchId", "datasetConfig.batchId"),
        dataset_config=config,
        encryption_key=optional_string(asked, "encryptionKey", MAX_KEY_LENGTH),
    )


def request_id(asked: Asked, requested_by: str, channel: str, day: str) -> str:
    """Sunbird's request id: one per (dataset, tag, requester, channel, day, datasetConfig.type), so the same
    request made twice on one day names one job. Its `_getRequestId(jobId, tag, ...)` is called as
    `(tag, dataset, ...)` and joins `tag, jobId`: the dataset comes first, and the hub keeps that order so
    its ids are the analytics service's. A protected request is a different request here (its file is
    another file), where Sunbird would answer the unprotected one made earlier that day."""
    kind = asked.dataset_config.get("type")
    parts = [asked.dataset, asked.tag, requested_by, channel, day, *([kind] if isinstance(kind, str) else [])]
    parts += ["encrypted"] if asked.encryption_key is not None else []
    return hashlib.md5("|".join(parts).encode(), usedforsecurity=False).hexdigest().upper()


def today(zone: ZoneInfo) -> str:
    """The day a request is made on, for the same-day rule: in the report's zone (`REPORT_TIMEZONE`), as
    the analytics service's runs in its server's (India's), not UTC's."""
    return f"{datetime.now(zone):%Y-%m-%d}"


@dataclass(frozen=True)
class Record:
    """A data-exhaust request and the hub job that answers it (the latest one: a FAILED request that is
    asked again runs a new job under the same request id)."""

    request_id: str
    tag: str  # with `:<channel>` appended, as Sunbird stores it
    dataset: str
    requested_by: str
    channel: str
    batch_id: str
    dataset_config: dict[str, Any]
    attempts: int
    job_id: str

    def encode(self) -> dict[str, str]:
        return {
            "requestId": self.request_id,
            "tag": self.tag,
            "dataset": self.dataset,
            "requestedBy": self.requested_by,
            "channel": self.channel,
            "batchId": self.batch_id,
            "datasetConfig": orjson.dumps(self.dataset_config).decode(),
            "attempts": str(self.attempts),
            "jobId": self.job_id,
        }

    @classmethod
    def decode(cls, raw: dict[bytes, bytes]) -> Record | None:
        if not raw:
            return None
        fields = {name.decode(): value.decode() for name, value in raw.items()}
        return cls(
            request_id=fields["requestId"],
            tag=fields["tag"],
            dataset=fields["dataset"],
            requested_by=fields["requestedBy"],
            channel=fields["channel"],
            batch_id=fields["batchId"],
            dataset_config=orjson.loads(fields["datasetConfig"]),
            attempts=int(fields["attempts"]),
            job_id=fields["jobId"],
        )


class Requests:
    """Where data-exhaust requests are kept: one hash each, and the tag's and channel's indexes."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._release = redis.register_script(scripts.RELEASE)

    async def get(self, request_id: str) -> Record | None:
        return Record.decode(await self._redis.hgetall(keys.exhaust_request(request_id)))

    async def save(self, record: Record, submitted_at: int, keep_seconds: int) -> None:
        """`keep_seconds`: as long as the job's own records (`Settings.records_kept_seconds`)."""
        indexes = (
            (keys.exhaust_tag(record.tag), TAG_REQUESTS),
            (keys.exhaust_channel(record.channel), CHANNEL_REQUESTS),
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.exhaust_request(record.request_id), mapping=record.encode())
            pipe.expire(keys.exhaust_request(record.request_id), keep_seconds)
            for index, size in indexes:
                pipe.zadd(index, {record.request_id: submitted_at})
                pipe.zremrangebyrank(index, 0, -(size + 1))
                pipe.expire(index, keep_seconds)
            await pipe.execute()

    async def newest(self, index: str, limit: int) -> list[Record]:
        ids = await self._redis.zrevrange(index, 0, limit - 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for raw in ids:
                pipe.hgetall(keys.exhaust_request(raw.decode()))
            found = await pipe.execute()
        return [record for record in map(Record.decode, found) if record is not None]

    async def of_tag(self, tag: str, limit: int) -> list[Record]:
        return await self.newest(keys.exhaust_tag(tag), limit)

    async def of_channel(self, channel: str) -> list[Record]:
        return await self.newest(keys.exhaust_channel(channel), CHANNEL_REQUESTS)

    @contextlib.asynccontextmanager
    async def claimed(self, request_id: str) -> AsyncIterator[None]:
        """One submission of a request id at a time: twin requests that arrive together both see the job
        the first one made, instead of the second being refused by the (user, batch) guard."""
        lock, token = keys.exhaust_lock(request_id), uuid.uuid4().hex
        try:
            async with asyncio.timeout(LOCK_SECONDS):
                # Another hub process may hold it, so there is no local event to wait on: poll Redis.
                while not await self._redis.set(lock, token, nx=True, ex=LOCK_SECONDS):  # noqa: ASYNC110
                    await asyncio.sleep(LOCK_POLL_SECONDS)
        except TimeoutError:
            raise errors.REQUEST_BUSY() from None
        try:
            yield
        finally:
            await self._release(keys=[lock], args=[token])


async def with_jobs(records: Iterable[Record], jobs: Jobs) -> list[tuple[Record, Job]]:
    """Each request with its job; a request whose job has expired is gone too."""
    records = list(records)
    found = await jobs.many([record.job_id for record in records])
    return [(record, job) for record, job in zip(records, found, strict=True) if job is not None]


def matches(record: Record, job: Job, filters: dict[str, Any], zone: ZoneInfo) -> bool:
    """Whether a request passes search's filters; each filter is one value or a list of them. The day a
    request was made is the day in `zone`, as for the same-day rule."""
    values = {
        "dataset": record.dataset,
        "status": job.status.value,
        "channel": record.channel,
        "requestedDate": f"{datetime.fromtimestamp(job.submitted_at / 1000, zone):%Y-%m-%d}",
    }
    for name in SEARCH_FILTERS:
        wanted = filters.get(name)
        if wanted is None:
            continue
        if values[name] not in (wanted if isinstance(wanted, list) else [wanted]):
            return False
    return True


def search_filters(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    asked = request_object(body)
    filters = asked.get("filters")
    if not isinstance(filters, dict) or not filters:
        raise errors.FILTERS_EMPTY()
    if not any(name in filters for name in SEARCH_FILTERS):
        raise errors.UNSUPPORTED_FILTERS(supported=", ".join(SEARCH_FILTERS))
    for name in SEARCH_FILTERS:
        check_filter(name, filters.get(name))
    return filters, limit_of(asked.get("limit", LIST_LIMIT))


def check_filter(name: str, value: object) -> None:
    """A filter is text, or a list of texts to match any of; search reads one channel, so that one is text
    (a number or an object would otherwise match nothing, and a list of channels be read as none)."""
    if value is None or isinstance(value, str):
        return
    if name == "channel":
        raise errors.INVALID_FILTER(name=name, kind="a string")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise errors.INVALID_FILTER(name=name, kind="a string or a list of strings")


def limit_of(value: object) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_LIMIT:
        raise errors.INVALID_LIMIT(limit=MAX_LIMIT)
    return value


def _ms(iso_time: str) -> int:
    return int(datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp() * 1000)


async def job_answer(record: Record, job: Job, storage: Storage, link_ttl: int) -> dict[str, Any]:
    """A job as the analytics service answers it (its `JobResponse`), times in ms. The download link is
    minted at every read, as Sunbird does, since a stored one would have expired; `expiresAt` is always
    given, as Sunbird's is: when a link minted now would stop working (`link_ttl` seconds on)."""
    urls: list[str] = []
    expires_at = now_ms() + link_ttl * 1000
    link = await storage.report_link(job)
    if link is not None:
        urls, expires_at = [link[0]], _ms(link[1])
    completed = job.completed_at if job.status.ended else None
    return {
        "requestId": record.request_id,
        "ref": job.ref,
        "tag": record.tag,
        "dataset": record.dataset,
        "requestedBy": record.requested_by,
        "requestedChannel": record.channel,
        "status": job.status.value,
        "statusMessage": f"{MESSAGES['report.failed']} ({job.error})" if job.status == Status.FAILED else None,
        "lastUpdated": completed or job.submitted_at,
        "datasetConfig": record.dataset_config,
        "attempts": record.attempts,
        "jobStats": {
            "dtJobSubmitted": job.submitted_at,
            "dtJobCompleted": completed,
            # The run's time, as Sunbird's `execution_time`: not the wait in the queue before it.
            "executionTime": completed - job.started_at if completed and job.started_at else None,
        },
        "downloadUrls": urls,
        "expiresAt": expires_at,
    }


def envelope(api_id: str, result: dict[str, Any] | None, status: int = 200, errmsg: str | None = None) -> bytes:
    """The analytics service's envelope: `ver` 1.0, and on failure the response code in `params.err`
    and the sentence in `params.errmsg`."""
    code = response_code(status)
    return orjson.dumps({
        "id": api_id,
        "ver": "1.0",
        "ts": now_iso(),
        "params": {
            "resmsgid": str(uuid.uuid4()),
            "msgid": None,
            "err": code if errmsg else None,
            "status": "failed" if errmsg else "successful",
            "errmsg": errmsg,
        },
        "responseCode": code,
        "result": result,
    })  # fmt: skip


def failure(api_id: str, error: HubError) -> bytes:
    return envelope(api_id, error.result or None, error.status, error.errmsg)
