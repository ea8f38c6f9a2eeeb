"""Where report files live (a local directory, S3, Azure Blob or GCS through obstore) and the short-lived
links that hand them to the mentor's device.

Local files are served by the hub behind an HMAC-signed link bound to one job; cloud files answer a
presigned GET, so the hub never streams gigabytes it does not have to. The path of a cloud URL
(`s3://bucket/some/prefix`) is a prefix every key goes under.

Cloud credentials and endpoints are the provider's usual variables (`AWS_*`, `AZURE_*`, `GOOGLE_*`),
kept in the settings when they are read and handed to obstore explicitly.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast
from urllib.parse import quote, urlparse

import obstore
from obstore.exceptions import BaseError, UnknownConfigurationKeyError
from obstore.store import AzureStore, GCSStore, LocalStore, S3Store, from_url

from hub import ids
from hub.config import STORAGE_UNUSABLE, ConfigError, Settings, local_root, require_link_secret
from hub.envelope import iso
from hub.job import ZIP, Job, Status
from hub.redact import redact

CloudStore = S3Store | AzureStore | GCSStore
CHUNK_SIZE = 5 * 1024 * 1024
CSV_TYPE = "text/csv; charset=utf-8"
ZIP_TYPE = "application/zip"
ENV_PREFIX = {"s3": "AWS_", "az": "AZURE_", "gs": "GOOGLE_"}
CONTAINER = {"s3": "bucket", "az": "container", "gs": "bucket"}
# obstore panics (PanicException) when an HTTP client option such as AWS_ALLOW_HTTP is given in a store's
# `config`; these go to `client_options` instead (names of obstore's ClientConfig).
CLIENT_OPTIONS = frozenset({
    "allow_http", "allow_invalid_certificates", "connect_timeout", "default_content_type", "http1_only",
    "http2_keep_alive_interval", "http2_keep_alive_timeout", "http2_keep_alive_while_idle", "http2_only",
    "pool_idle_timeout", "pool_max_idle_per_host", "proxy_url", "proxy_ca_certificate", "proxy_excludes",
    "randomize_addresses", "read_timeout", "timeout", "user_agent",
})  # fmt: skip
# STORAGE_URL names the bucket; an AWS_BUCKET left in the environment would otherwise override it.
BUCKET_OPTIONS = frozenset({"bucket", "bucket_name", "container_name"})
STATUS = re.compile(r"status code: (\d{3})")
ERROR_CODE = re.compile(r"<Code>([^<]+)</Code>")
# Every report file is under this prefix (`Job.run_key`): what retention lists.
REPORTS = "reports/"
# Keys a listing answer carries and a bulk delete removes (S3's DeleteObjects takes at most 1000).
LIST_CHUNK = 1000
# obstore's LocalStore writes an object to `<name>#<n>` beside it and renames it when complete; a worker
# killed mid-upload leaves that file behind, and listings do not show it.
STAGED = re.compile(r"#\d+$")
log = logging.getLogger(__name__)


class StorageError(Exception):
    """The object store refused or failed a request; the message is one line an operator can act on."""


def content_disposition(file_name: str) -> str:
    """`filename` for old clients (ASCII only, as header values must be), `filename*` for the rest."""
    plain = file_name.encode("ascii", "ignore").decode().replace('"', "").replace("\\", "")
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(file_name)}"


def content_type(file_name: str) -> str:
    """A password-protected report is a ZIP; every other one a CSV."""
    return ZIP_TYPE if file_name.endswith(ZIP) else CSV_TYPE


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _understood(scheme: str, key: str, value: str) -> bool:
    """Whether obstore knows the setting: deployments carry AWS_PROFILE and the like, which it ignores."""
    try:
        from_url(f"{scheme}://probe", config={key: value})
    except UnknownConfigurationKeyError:
        return False
    except BaseError:
        return True  # known, but wrong or incomplete on its own: building the real store says so
    return True


def cloud_options(scheme: str, env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The store config and HTTP client options that the provider's variables in `env` ask for."""
    prefix = ENV_PREFIX[scheme]
    config: dict[str, str] = {}
    client: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(prefix) or not value.strip():
            continue
        option = name.removeprefix(prefix).lower()
        if option in CLIENT_OPTIONS:
            client[option] = value.strip()
        elif option not in BUCKET_OPTIONS and _understood(scheme, name.lower(), value.strip()):
            config[name.lower()] = value.strip()
    return config, client


def _cloud_store(url: str, env: Mapping[str, str]) -> CloudStore:
    config, client = cloud_options(urlparse(url).scheme, env)
    try:
        return cast(CloudStore, from_url(url, config=config, client_options=client or None))
    except BaseError as exc:
        raise ConfigError(STORAGE_UNUSABLE.format(_first_line(exc))) from None


class Storage:
    """One object store for report files, built once from the settings at start."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        url = settings.storage_url
        self.local_root: Path | None = None
        self._link_secret = ""
        if url.startswith("file://"):
            require_link_secret(settings)
            self._link_secret = str(settings.link_secret)
            self.local_root = local_root(url)
            try:
                self.local_root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"STORAGE_URL names a directory that cannot be made: {exc}") from None
            # Deleting a report also removes the folders it leaves empty (they are named by batch and job).
            self._store: LocalStore | CloudStore = LocalStore(self.local_root, automatic_cleanup=True)
            self._where = str(self.local_root)
        else:
            cloud = _cloud_store(url, settings.storage_env)
            endpoint = cloud.config.get("endpoint")
            self._store = cloud
            self._where = redact(f"{url} at {endpoint}" if endpoint else url)
        self._container = CONTAINER.get(urlparse(url).scheme, "directory")

    async def check(self) -> None:
        """Reads one listing entry, so a missing bucket or refused credentials stop the worker at start
        instead of failing every report later."""
        try:
            await anext(aiter(obstore.list(self._store, prefix=REPORTS, chunk_size=1)), None)
        except BaseError as exc:
            raise StorageError(self._explain(exc)) from None
        if self.local_root is None:
            try:  # signing is local: credentials that can write but not sign (an Azure SAS token) show here
                await obstore.sign_async(cast(CloudStore, self._store), "GET", REPORTS + "probe", timedelta(seconds=60))
            except BaseError as exc:
                raise StorageError(f"download links cannot be signed: {_first_line(exc)}") from None

    async def put(self, key: str, chunks: AsyncIterator[bytes], file_name: str) -> int:
        """Streams `chunks` into one object in 5 MiB parts while they are still being made, so memory
        stays flat whatever the batch size. When the iterator or the store fails, obstore aborts the
        multipart upload and no object appears."""
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                size += len(chunk)
                yield chunk

        try:
            await obstore.put_async(
                self._store, key, counted(), attributes=self._attributes(file_name), chunk_size=CHUNK_SIZE
            )
        except BaseException as exc:
            # Cancellation can land after the upload completed: never leave a file the job does not own.
            with contextlib.suppress(Exception):
                await self.delete(key)
            if isinstance(exc, BaseError):
                raise StorageError(self._explain(exc)) from exc
            raise
        return size

    def _attributes(self, file_name: str) -> dict[str, str] | None:
        """Stored with a cloud object, these make its presigned GET save under the report's name; the hub
        sets them itself on local files (LocalStore cannot keep attributes)."""
        if self.local_root is not None:
            return None
        return {"Content-Type": content_type(file_name), "Content-Disposition": content_disposition(file_name)}

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self._store, key)

    async def remove_older_than(self, cutoff: datetime) -> int:
        """Deletes every report file last written before `cutoff`; returns how many. One listing of the
        reports and bulk deletes, so a run over a week of reports costs a few requests per thousand files."""
        removed = 0
        try:
            async for chunk in obstore.list(self._store, prefix=REPORTS, chunk_size=LIST_CHUNK):
                old = [meta["path"] for meta in chunk if meta["last_modified"] < cutoff]
                if old:
                    # Two runs may overlap (a worker whose clock is far behind): a file already gone is fine.
                    with contextlib.suppress(FileNotFoundError):
                        await obstore.delete_async(self._store, old)
                    removed += len(old)
        except BaseError as exc:
            raise StorageError(self._explain(exc)) from None
        return removed

    def remove_abandoned_uploads(self, idle_seconds: float) -> list[Path]:
        """Deletes local uploads that a killed worker left half-written, judged by age alone: an upload is
        made within one run of a job, so a file not written to for longer than a run may take
        (`idle_seconds`) belongs to no living worker, on this machine or another sharing the directory
        (with a clock that agrees). Cloud stores keep an unfinished multipart upload out of sight; a
        bucket lifecycle rule removes those."""
        if self.local_root is None:
            return []
        cutoff = time.time() - idle_seconds
        removed = []
        # Listed first, and by os.walk, which passes over folders that other workers remove meanwhile.
        walk = os.walk(self.local_root)
        staged = [Path(top, name) for top, _, names in walk for name in names if STAGED.search(name)]
        for path in staged:
            with contextlib.suppress(FileNotFoundError):  # finished or removed meanwhile
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
                    self._remove_empty_folders(path.parent)
        if removed:
            log.info("removed %d half-written report files left by stopped workers", len(removed))
        return removed

    def _remove_empty_folders(self, folder: Path) -> None:
        assert self.local_root is not None
        while folder != self.local_root and folder.is_relative_to(self.local_root):
            try:
                folder.rmdir()
            except OSError:  # not empty: another file is being written or kept there
                return
            folder = folder.parent

    def expired(self, job: Job) -> bool:
        """A report is deleted REPORT_RETENTION after it was made; from then on no link to it is minted or
        honoured, even before the retention job has removed the file."""
        retention_ms = self._settings.report_retention * 1000
        return job.completed_at is not None and time.time() * 1000 >= job.completed_at + retention_ms

    async def report_link(self, job: Job) -> tuple[str, str] | None:
        """A fresh link to the job's report and when it stops working, or None when there is none to give:
        the job has not succeeded, or its report has expired."""
        if job.status != Status.SUCCESS or not job.key or self.expired(job):
            return None
        return await self.download_url(job.job_id, job.key)

    def local_path(self, key: str) -> Path:
        assert self.local_root is not None
        return self.local_root / key

    async def download_url(self, job_id: str, key: str) -> tuple[str, str]:
        """A fresh link for the job's file and when it stops working (ISO time)."""
        ttl = self._settings.link_ttl
        expires = int(time.time()) + ttl
        expires_at = iso(expires * 1000)
        if self.local_root is not None:
            signature = sign(self._link_secret, job_id, key, expires)
            return f"{self._settings.public_url}/files/{job_id}?expires={expires}&sig={signature}", expires_at
        url = await obstore.sign_async(cast(CloudStore, self._store), "GET", key, timedelta(seconds=ttl))
        return url, expires_at

    def link_is_valid(self, job_id: str, key: str, expires: str, signature: str) -> bool:
        """Whether a local download link was minted by `download_url` for this job and has not expired."""
        return bool(self._link_secret) and link_is_valid(self._link_secret, job_id, key, expires, signature)

    def _explain(self, exc: BaseError) -> str:
        """obstore's messages run to dozens of lines of debug output; an operator needs the status."""
        text = str(exc)
        status = STATUS.search(text)
        code = ERROR_CODE.search(text)
        detail = " ".join(match.group(1) for match in (status, code) if match)
        if status and status.group(1) == "404":
            reason = f"the {self._container} does not exist"
        elif status and status.group(1) in ("401", "403"):
            reason = "the credentials were refused"
        else:
            return f"{self._where}: {_first_line(exc)}"
        return f"{self._where}: {reason} ({detail})"


def sign(secret: str, job_id: str, key: str, expires: int) -> str:
    message = f"{job_id}\n{key}\n{expires}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def link_is_valid(secret: str, job_id: str, key: str, expires: str, signature: str) -> bool:
    """Whatever a link's holder puts in it: `expires` ASCII digits only, any signature compared as bytes
    (`compare_digest` raises on non-ASCII text)."""
    if not ids.EXPIRES.fullmatch(expires) or int(expires) < time.time():
        return False
    return hmac.compare_digest(sign(secret, job_id, key, int(expires)).encode(), signature.encode())
