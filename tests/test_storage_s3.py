"""Report files in S3 for real (SeaweedFS): where they land, how they stream, what a failure leaves,
and how a wrong bucket or refused credentials are reported."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
import random
import re
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from arq.worker import Worker
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from yarl import URL

from hub.config import Settings, load
from hub.storage import Storage, StorageError, cloud_options
from jobs.retention import REMOVE_EXPIRED
from tests.helpers import Call, next_event, running_worker
from tests.seaweed import Seaweed, seaweed_server

BUCKET = "reports"
BATCH = "batch-0001"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def seaweed() -> Iterator[Seaweed]:
    with seaweed_server() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture
def env(env: dict[str, str], seaweed: Seaweed, prefix: str) -> dict[str, str]:
    return {**env, **seaweed.env(), "STORAGE_URL": f"s3://{BUCKET}/{prefix}"}


@pytest.fixture
def storage(settings: Settings) -> Storage:
    return Storage(settings)


def blocks(count: int, size: int = MIB) -> list[bytes]:
    rng = random.Random(count)
    return [rng.randbytes(size) for _ in range(count)]


async def test_report_lands_under_the_prefix_and_its_presigned_link_downloads_it(
    call: Call,
    http: aiohttp.ClientSession,
    socket_url: Any,
    worker: Worker,
    seaweed: Seaweed,
    prefix: str,
    settings: Settings,
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        status, _ = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        assert status == 202
        completed = await next_event(ws, "report.completed")

    file_name = completed["fileName"]
    assert file_name == f"{BATCH}_progress_{datetime.now(settings.report_zone):%Y%m%d}.csv"
    [key] = await seaweed.keys(BUCKET, prefix)
    assert key.startswith(f"{prefix}/reports/{BATCH}/{completed['jobId']}/")
    assert key.endswith(f"/{file_name}")
    link = completed["downloadUrl"]
    assert link.startswith(f"{seaweed.endpoint}/{BUCKET}/{key}?")
    assert "X-Amz-Expires=1800" in link and "X-Amz-Signature=" in link

    async with aiohttp.ClientSession() as browser, browser.get(URL(link, encoded=True)) as response:
        assert response.status == 200
        downloaded = await response.read()
        disposition = response.headers["Content-Disposition"]
        content_type = response.headers["Content-Type"]
    stored, _ = await seaweed.get(BUCKET, key)
    assert downloaded == stored
    assert disposition.startswith("attachment;") and f'filename="{file_name}"' in disposition
    assert content_type.startswith("text/csv")
    rows = list(csv.reader(io.StringIO(downloaded.decode("utf-8"))))
    assert rows[0][0].startswith("\ufeffCollection Id") and len(rows) == 121
    assert completed["bytes"] == len(downloaded)


async def test_large_report_is_uploaded_in_parts_while_rows_are_still_coming(
    storage: Storage, seaweed: Seaweed, prefix: str
) -> None:
    key = "reports/big/job-1/big_progress_20260101.csv"
    data = blocks(12)
    parts_before_the_end = 0

    async def rows() -> AsyncIterator[bytes]:
        nonlocal parts_before_the_end
        for block in data[:-1]:
            yield block
        # Two 5 MiB parts are full: the first is on the server before the last rows are made.
        parts_before_the_end = await seaweed.wait_for_parts(BUCKET, f"{prefix}/{key}", 1)
        yield data[-1]

    size = await storage.put(key, rows(), "big_progress_20260101.csv")

    assert parts_before_the_end >= 1
    assert size == 12 * MIB
    stored, headers = await seaweed.get(BUCKET, f"{prefix}/{key}")
    assert hashlib.sha256(stored).digest() == hashlib.sha256(b"".join(data)).digest()
    assert headers["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MiB
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="big_progress_20260101.csv"' in headers["Content-Disposition"]


async def test_iterator_failing_midway_leaves_no_object(
    storage: Storage,
    seaweed: Seaweed,
    prefix: str,
) -> None:
    key = "reports/broken/job-2/broken_progress_20260101.csv"

    async def rows() -> AsyncIterator[bytes]:
        for block in blocks(7):
            yield block
        await seaweed.wait_for_parts(BUCKET, f"{prefix}/{key}", 1)
        raise ConnectionError("source went away")

    with pytest.raises(ConnectionError, match="source went away"):
        await storage.put(key, rows(), "broken_progress_20260101.csv")

    assert await seaweed.keys(BUCKET, prefix) == []
    assert await seaweed.pending_uploads(BUCKET, prefix) == []


async def test_the_cron_job_deletes_reports_past_the_retention_from_the_bucket(
    settings: Settings, storage: Storage, seaweed: Seaweed, prefix: str, redis: Any, batch: dict[str, Any]
) -> None:
    retention = 3  # S3 keeps Last-Modified in whole seconds: a fresh report must be a second clear of it

    async def rows() -> AsyncIterator[bytes]:
        yield b"user_id\n"

    async with running_worker(settings.with_(report_retention=retention)) as worker:
        await storage.put("reports/old/job-1/old_progress_20260101.csv", rows(), "old_progress_20260101.csv")
        await asyncio.sleep(retention + 0.5)
        await storage.put("reports/new/job-2/new_progress_20260101.csv", rows(), "new_progress_20260101.csv")

        await worker.pool.enqueue_job(REMOVE_EXPIRED)

        async with asyncio.timeout(10):
            while len(await seaweed.keys(BUCKET, prefix)) > 1:  # noqa: ASYNC110 (the cron job tells no one)
                await asyncio.sleep(0.05)
    assert await seaweed.keys(BUCKET, prefix) == [f"{prefix}/reports/new/job-2/new_progress_20260101.csv"]


async def test_missing_bucket_fails_the_check_with_a_clear_message(
    env: dict[str, str],
    seaweed: Seaweed,
) -> None:
    env = {**env, "STORAGE_URL": "s3://no-such-bucket/reports"}
    with pytest.raises(StorageError) as failure:
        await Storage(load(env)).check()
    assert str(failure.value) == (
        f"s3://no-such-bucket/reports at {seaweed.endpoint}: the bucket does not exist (404 NoSuchBucket)"
    )


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        ({"AWS_ACCESS_KEY_ID": "someone-else"}, "InvalidAccessKeyId"),
        ({"AWS_SECRET_ACCESS_KEY": "wrong-secret"}, "SignatureDoesNotMatch"),
    ],
    ids=["unknown-key", "wrong-secret"],
)
async def test_refused_credentials_fail_the_check_with_a_clear_message(
    env: dict[str, str],
    seaweed: Seaweed,
    credentials: dict[str, str],
    code: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Good credentials in this process's environment do not matter: the settings' own ones count."""
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    env = {**env, **credentials}
    with pytest.raises(StorageError) as failure:
        await Storage(load(env)).check()
    assert str(failure.value) == (
        f"{env['STORAGE_URL']} at {seaweed.endpoint}: the credentials were refused (403 {code})"
    )
    assert "wrong-secret" not in str(failure.value)


async def test_worker_with_a_missing_bucket_exits_with_one_line_naming_storage_url(
    env: dict[str, str], batch: dict[str, Any], tmp_path: Path
) -> None:
    hub = Path(sys.executable).parent / "hub"
    process = await asyncio.create_subprocess_exec(
        str(hub), "worker", cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**env, "STORAGE_URL": "s3://no-such-bucket/reports", "PATH": str(hub.parent)},
    )  # fmt: skip
    async with asyncio.timeout(30):
        _, stderr = await process.communicate()

    assert process.returncode != 0
    output = stderr.decode()
    assert "Traceback" not in output
    named = [line for line in output.splitlines() if "STORAGE_URL" in line]
    assert len(named) == 1
    assert re.fullmatch(
        r"hub worker: STORAGE_URL cannot be used: s3://no-such-bucket/reports at http://127\.0\.0\.1:\d+: "
        r"the bucket does not exist \(404 NoSuchBucket\)",
        named[0],
    )


def _service_account() -> str:
    """A made-up GCS service account: signing a link with its key needs no network."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    account = {
        "type": "service_account",
        "private_key": pem.decode(),
        "private_key_id": "1",
        "client_email": "hub@diksha.iam.gserviceaccount.com",
        "project_id": "diksha",
    }
    return json.dumps(account)


@pytest.mark.parametrize(
    ("url", "cloud", "link"),
    [
        (
            "az://reports/diksha/prod",
            {"AZURE_STORAGE_ACCOUNT_NAME": "hubacct",
             "AZURE_STORAGE_ACCOUNT_KEY": base64.b64encode(b"k" * 32).decode()},
            r"https://hubacct\.blob\.core\.windows\.net/reports/diksha/prod/reports/b/j/f\.csv\?.*sig=",
        ),
        (
            "gs://reports/diksha/prod",
            {"GOOGLE_SERVICE_ACCOUNT_KEY": _service_account()},
            r"https://storage\.googleapis\.com/reports/diksha/prod/reports/b/j/f\.csv\?.*X-Goog-Expires=1800",
        ),
    ],
    ids=["az", "gs"],
)  # fmt: skip
async def test_az_and_gs_links_keep_the_url_prefix_and_use_the_settings_credentials(
    url: str, cloud: dict[str, str], link: str
) -> None:
    """Signing needs no network: the link shows the prefix and that the credentials were taken up."""
    env = {"STORAGE_URL": url, **cloud}
    signed, _ = await Storage(load(env)).download_url("j", "reports/b/j/f.csv")
    assert re.match(link, signed)


def test_cloud_variables_become_obstore_options() -> None:
    env = {
        "AWS_ENDPOINT": "http://127.0.0.1:9000",
        "AWS_ALLOW_HTTP": "true",  # an HTTP client option, not a store setting
        "AWS_PROFILE": "dev",  # not understood by obstore: ignored, as obstore itself does
        "AWS_BUCKET": "elsewhere",  # STORAGE_URL names the bucket
        "AZURE_STORAGE_ACCOUNT_NAME": "other-provider",
        "AWS_REGION": "",
    }
    assert cloud_options("s3", env) == ({"aws_endpoint": "http://127.0.0.1:9000"}, {"allow_http": "true"})
