"""Password-protected reports: a ZIP holding the CSV, encrypted with the password the mentor chose, which
is kept nowhere once the job has ended (not in Redis, not in an event, not in a log)."""

from __future__ import annotations

import asyncio
import io
import logging
import struct
import zipfile
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import pyzipper
from redis.asyncio import Redis

from hub.config import ConfigError, load
from tests.helpers import MENTOR, Call, next_event

BATCH = "batch-0001"
PASSWORD = "Mentor2026pass"
# The compression method a ZIP's first local header names: 8 (deflate) under ZipCrypto, 99 under AES.
METHODS = {"zipcrypto": 8, "aes256": 99}


@pytest.fixture(params=sorted(METHODS))
def cipher(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def env(env: dict[str, str], cipher: str) -> dict[str, str]:
    return {**env, "REPORT_ZIP_ENCRYPTION": cipher}


async def download(url: str) -> tuple[str, bytes]:
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url) as response:
        assert response.status == 200
        return response.headers["Content-Type"], await response.read()


async def everything_in_redis(redis: Redis) -> bytes:
    """Every value of every key, read by type (a DUMP may be compressed and hide a string)."""
    seen = []
    async for key in redis.scan_iter():
        kind = (await redis.type(key)).decode()
        if kind == "string":
            seen.append(await redis.get(key) or b"")
        elif kind == "hash":
            seen.extend(value for pair in (await redis.hgetall(key)).items() for value in pair)
        elif kind == "list":
            seen.extend(await redis.lrange(key, 0, -1))
        elif kind == "zset":
            seen.extend(await redis.zrange(key, 0, -1))
        elif kind == "stream":
            seen.extend(value for _, fields in await redis.xrange(key) for value in fields.values())
    return b"\n".join(seen)


async def test_a_report_asked_with_a_password_is_a_zip_that_opens_only_with_it(
    call: Call, http, socket_url, worker, cipher: str
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        body = {"batchId": BATCH, "encryptionKey": PASSWORD}
        status, _ = await call("POST", "/v1/reports/course-progress", json=body)
        assert status == 202
        ready = await next_event(ws, "report.completed")
    csv_name = f"{BATCH}_progress_{datetime.now(UTC):%Y%m%d}.csv"
    assert ready["fileName"] == csv_name.removesuffix(".csv") + ".zip"
    content_type, raw = await download(ready["downloadUrl"])
    assert content_type == "application/zip"
    assert len(raw) == ready["bytes"]
    assert struct.unpack("<H", raw[8:10])[0] == METHODS[cipher]
    with pyzipper.AESZipFile(io.BytesIO(raw)) as archive:
        assert archive.namelist() == [csv_name]
        with pytest.raises(RuntimeError, match="password"):
            archive.read(csv_name)
        archive.setpassword(b"not-the-password")
        with pytest.raises(RuntimeError, match="password"):
            archive.read(csv_name)
        archive.setpassword(PASSWORD.encode())
        lines = archive.read(csv_name).decode("utf-8-sig").splitlines()
    assert len(lines) == 1 + 120
    assert lines[0].startswith("Collection Id,")


@pytest.mark.parametrize("cipher", ["zipcrypto"], indirect=True)
async def test_zipcrypto_reports_open_with_the_standard_library(call: Call, http, socket_url, worker) -> None:
    """What operating systems open without extra software: the classic PKWARE encryption."""
    async with http.ws_connect(await socket_url()) as ws:
        await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH, "encryptionKey": PASSWORD})
        ready = await next_event(ws, "report.completed")
    _, raw = await download(ready["downloadUrl"])
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        [info] = archive.infolist()
        assert info.flag_bits & 0x1  # encrypted
        assert len(archive.read(info, pwd=PASSWORD.encode()).splitlines()) == 1 + 120


@pytest.mark.parametrize("cipher", ["zipcrypto"], indirect=True)
async def test_the_password_is_kept_nowhere_once_the_job_ends(
    call: Call, http, socket_url, worker, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with http.ws_connect(await socket_url()) as ws:
        await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH, "encryptionKey": PASSWORD})
        frames: list[dict[str, Any]] = [await next_event(ws, "report.completed")]
    status, timeline = await call("GET", "/v1/notifications?after=0-0")
    assert status == 200
    frames += timeline["result"]["events"]
    assert PASSWORD not in str(frames)
    assert PASSWORD.encode() not in await everything_in_redis(redis)
    assert PASSWORD not in caplog.text
    assert "Secret(***)" in caplog.text  # arq logged the job's arguments, and the password was not among them


@pytest.mark.parametrize("cipher", ["zipcrypto"], indirect=True)
async def test_a_data_exhaust_request_with_an_encryption_key_gets_a_protected_zip(http, token, worker) -> None:
    body = {
        "request": {
            "tag": f"do_course_0001_{BATCH}",
            "requestedBy": MENTOR,
            "dataset": "progress-exhaust",
            "datasetConfig": {"batchId": BATCH},
            "output_format": "csv",
            "encryptionKey": PASSWORD,
        }
    }
    headers = {"x-authenticated-user-token": token(MENTOR), "X-Channel-Id": "channel-1"}
    async with http.post("/dataset/v1/request/submit", json=body, headers=headers) as response:
        request_id = (await response.json())["result"]["requestId"]
    read = f"/dataset/v1/request/read/do_course_0001_{BATCH}?requestId={request_id}"
    for _ in range(150):
        async with http.get(read, headers=headers) as response:
            job = (await response.json())["result"]
        if job["status"] == "SUCCESS":
            break
        await asyncio.sleep(0.1)
    _, raw = await download(job["downloadUrls"][0])
    with pyzipper.AESZipFile(io.BytesIO(raw)) as archive:
        archive.setpassword(PASSWORD.encode())
        assert len(archive.read(archive.namelist()[0]).splitlines()) == 1 + 120


@pytest.mark.parametrize("cipher", ["zipcrypto"], indirect=True)
def test_an_unknown_cipher_stops_the_process_naming_the_setting(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="REPORT_ZIP_ENCRYPTION"):
        load({**env, "REPORT_ZIP_ENCRYPTION": "des"})
