"""Secrets stay secret: a setting's password never appears in the line that says the setting is wrong,
and no token, ticket, link signature or key appears in anything `hub serve` and `hub worker` log while
a mentor signs in, opens a socket, makes a report and downloads it, and while strangers try bad tokens."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.harness import wait_until_up
from hub.config import ConfigError, load
from tests.helpers import LINK_SECRET, SECRET, next_event

PASSWORD = "s3cret-pass-word"


@pytest.mark.parametrize(
    "changes",
    [
        {"REDIS_URL": f"http://hub:{PASSWORD}@localhost"},
        {"SOURCE_URL": f"mysql://hub:{PASSWORD}@db/reports"},
        {"STORAGE_URL": f"ftp://hub:{PASSWORD}@files"},
        {"TELEMETRY_URL": f"ftp://hub:{PASSWORD}@sunbird"},
        {"JWT_JWKS_URL": f"ftp://hub:{PASSWORD}@keycloak/certs"},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_a_malformed_url_is_named_without_its_password(env: dict[str, str], changes: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as wrong:
        load({**env, **changes})
    assert next(iter(changes)) in str(wrong.value)
    assert PASSWORD not in str(wrong.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"REDIS_URL": f"redis://hub:{PASSWORD}@127.0.0.1:1/0"},
        {"SOURCE_URL": f"postgresql://hub:{PASSWORD}@127.0.0.1:1/reports"},
        {"JWT_JWKS_URL": f"http://hub:{PASSWORD}@127.0.0.1:1/certs"},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_a_service_that_cannot_be_reached_is_named_without_its_password(
    env: dict[str, str], batch: dict[str, Any], changes: dict[str, str]
) -> None:
    done = subprocess.run([sys.executable, "-m", "hub", "serve"], env={**os.environ, **env, **changes},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert next(iter(changes)) in done.stderr
    assert PASSWORD not in done.stderr + done.stdout


@contextlib.asynccontextmanager
async def serve_and_work(env: dict[str, str], logs: Path) -> AsyncIterator[str]:
    """`hub serve` and `hub worker` as an operator runs them, their output in `logs`."""
    processes = []
    try:
        for command in ("serve", "worker"):
            with (logs / f"{command}.log").open("wb") as out:
                started = asyncio.create_subprocess_exec(sys.executable, "-m", "hub", command,
                                                         env={**os.environ, **env}, stdout=out, stderr=out)  # fmt: skip
                processes.append(await started)
        async with aiohttp.ClientSession() as probe:
            await wait_until_up(probe, env["PUBLIC_URL"], str(logs))
        yield env["PUBLIC_URL"]
    finally:
        for process in processes:
            process.terminate()
            await process.wait()


def read_logs(folder: Path) -> str:
    return "".join(log.read_text() for log in folder.glob("*.log"))


async def test_nothing_a_mentor_or_a_stranger_sends_reaches_the_logs(
    env: dict[str, str], batch: dict[str, Any], redis, token, tmp_path: Path
) -> None:
    mentor = token()
    secrets = {mentor, SECRET, LINK_SECRET, "bad." + mentor[4:]}
    async with serve_and_work(env, tmp_path) as base, aiohttp.ClientSession(base_url=base) as http:
        headers = {"Authorization": f"Bearer {mentor}"}
        async with http.post("/v1/notifications/ticket", headers=headers) as response:
            ticket = (await response.json())["result"]["ticket"]
        secrets.add(ticket)
        async with http.ws_connect(f"/v1/notifications/ws?ticket={ticket}") as ws:
            async with http.post("/v1/reports/course-progress", headers=headers, json={"batchId": "batch-0001"}):
                pass
            ready = await next_event(ws, "report.completed", within=30)
        signature = ready["downloadUrl"].rsplit("sig=", 1)[1]
        secrets.add(signature)
        async with http.get(ready["downloadUrl"].removeprefix(base)) as download:
            assert download.status == 200
        for stranger in (f"Bearer bad.{mentor[4:]}", f"Bearer {mentor}x", "Basic " + mentor):
            async with http.get("/v1/mentor/batches", headers={"Authorization": stranger}) as refused:
                assert refused.status == 401
        async with http.get(f"/files/{ready['jobId']}?expires=1&sig={signature}") as replayed:
            assert replayed.status == 403
        async with http.get(f"/v1/notifications/ws?ticket={ticket}") as reused:
            assert reused.status in (400, 401)
    written = read_logs(tmp_path)
    assert f"/files/{ready['jobId']}" in written, "the access log was written"
    leaked = sorted(secret[:12] + "..." for secret in secrets if secret in written)
    assert leaked == []
