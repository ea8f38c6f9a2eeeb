"""Report files in Azure Blob Storage, where DIKSHA keeps its files, for real (Azurite): the report is
written to `az://container/prefix`, and its SAS link downloads it with no credentials until it expires."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from arq.worker import Worker
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

from hub.config import load
from hub.storage import Storage, StorageError
from tests.azurite import ACCOUNT, ACCOUNT_KEY, Azurite, azurite_server
from tests.helpers import Call, next_event

CONTAINER = "reports"
BATCH = "batch-0001"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with azurite_server(tmp_path_factory.mktemp("azurite")) as server:
        server.service().create_container(CONTAINER)
        yield server


@pytest.fixture
def env(env: dict[str, str], azurite: Azurite, prefix: str) -> dict[str, str]:
    return {**env, **azurite.env(), "STORAGE_URL": f"az://{CONTAINER}/{prefix}", "LINK_TTL": "2"}


async def ready_report(call: Call, http: aiohttp.ClientSession, socket_url) -> dict:
    async with http.ws_connect(await socket_url()) as ws:
        assert (await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH}))[0] == 202
        return await next_event(ws, "report.completed")


async def test_a_report_is_written_to_the_container_under_its_prefix(
    call: Call, http, socket_url, worker: Worker, azurite: Azurite, prefix: str
) -> None:
    completed = await ready_report(call, http, socket_url)
    blobs = [blob.name for blob in azurite.service().get_container_client(CONTAINER).list_blobs(prefix + "/")]
    assert [Path(name).name for name in blobs] == [completed["fileName"]]


async def test_its_sas_link_downloads_it_with_no_credentials_then_expires(
    call: Call, http, socket_url, worker: Worker
) -> None:
    completed = await ready_report(call, http, socket_url)
    assert "sig=" in completed["downloadUrl"] and "se=" in completed["downloadUrl"]
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(completed["downloadUrl"]) as response:
            assert response.status == 200
            rows = list(csv.reader(io.StringIO((await response.read()).decode("utf-8-sig"))))
        assert len(rows) == 1 + 120
        async with asyncio.timeout(15):  # LINK_TTL is 2 s: Azurite refuses the link once its `se` passes
            while True:
                async with anonymous.get(completed["downloadUrl"]) as response:
                    if response.status == 403:
                        break
                await asyncio.sleep(0.25)


async def test_a_sas_token_that_can_write_but_not_sign_links_stops_the_start(env: dict[str, str]) -> None:
    sas = generate_account_sas(
        ACCOUNT, ACCOUNT_KEY, ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, write=True, list=True), expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    without_key = {name: value for name, value in env.items() if name != "AZURE_STORAGE_ACCOUNT_KEY"}
    with pytest.raises(StorageError, match="download links cannot be signed"):
        await Storage(load({**without_key, "AZURE_STORAGE_SAS_KEY": sas})).check()
