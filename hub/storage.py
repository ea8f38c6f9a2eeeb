"""Where report files live (a local directory, S3, Azure Blob or GCS through obstore) and the short-lived
links that hand them to the mentor's device.

Local files are served by the hub behind an HMAC-signed link bound to one job; cloud files answer a
presigned GET, so the hub never streams gigabytes it does not have to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlparse

import obstore
from obstore.store import LocalStore, from_url

from hub.config import ConfigError, Settings

CHUNK_SIZE = 5 * 1024 * 1024


def content_disposition(file_name: str) -> str:
    return f"attachment; filename=\"{file_name}\"; filename*=UTF-8''{quote(file_name)}"


def _local_root(url: str) -> Path:
    parsed = urlparse(url)
    return Path(parsed.netloc + parsed.path).expanduser().resolve()


class Storage:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        url = settings.storage_url
        self.local_root: Path | None = None
        if url.startswith("file://"):
            self.local_root = _local_root(url)
            try:
                self.local_root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"STORAGE_URL names a directory that cannot be made: {exc}") from None
            self._store = LocalStore(self.local_root)
        else:
            try:
                self._store = from_url(url)
            except Exception as exc:
                raise ConfigError(f"STORAGE_URL cannot be used: {exc}") from None

    async def check(self) -> None:
        """Raises when the store cannot be listed (missing bucket, refused credentials)."""
        await obstore.list(self._store, prefix="reports/", chunk_size=1).collect_async()

    async def put(self, key: str, chunks: AsyncIterator[bytes], file_name: str) -> int:
        """Streams `chunks` into one object; a failure part-way leaves no partial object behind."""
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                size += len(chunk)
                yield chunk

        attributes = None if self.local_root else {"Content-Disposition": content_disposition(file_name)}
        try:
            await obstore.put_async(self._store, key, counted(), attributes=attributes, chunk_size=CHUNK_SIZE)
        except BaseException:
            await self.delete(key)
            raise
        return size

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, key)
        except FileNotFoundError:
            pass

    def local_path(self, key: str) -> Path:
        assert self.local_root is not None
        return self.local_root / key

    async def download_url(self, job_id: str, key: str) -> tuple[str, str]:
        """A fresh link for the job's file and when it stops working (ISO time)."""
        ttl = self._settings.link_ttl
        expires = int(time.time()) + ttl
        expires_at = datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")
        if self.local_root is not None:
            signature = sign(self._settings.link_secret, job_id, key, expires)
            return f"{self._settings.public_url}/files/{job_id}?expires={expires}&sig={signature}", expires_at
        url = await obstore.sign_async(self._store, "GET", key, timedelta(seconds=ttl))
        return url, expires_at


def sign(secret: str, job_id: str, key: str, expires: int) -> str:
    message = f"{job_id}\n{key}\n{expires}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def link_is_valid(secret: str, job_id: str, key: str, expires: str, signature: str) -> bool:
    if not expires.isdigit() or int(expires) < time.time():
        return False
    return hmac.compare_digest(sign(secret, job_id, key, int(expires)), signature)
