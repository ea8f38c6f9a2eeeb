"""Per-user bounds: a client stuck in a loop gets 429 in the envelope with `Retry-After` on every
authenticated route, other users are not affected, and one user cannot hold more than MAX_CONNECTIONS
sockets and streams open across hub instances, while a hub that dies gives its slots back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from bench.harness import wait_until_up
from hub import keys
from hub.embedded import free_port
from hub.limits import WINDOW_SECONDS
from tests.helpers import MENTOR, Call, eventually
from tests.probe import answer_of, status_of

JOB = "0a" * 16


CONNECTION_LEASE = 3


@pytest.fixture
def env(env: dict[str, str], request: pytest.FixtureRequest) -> dict[str, str]:
    """Small bounds; a test may change some with `parametrize("env", [{...}], indirect=True)`."""
    bounds = {"RATE_LIMIT": "3", "READ_RATE_LIMIT": "3", "DASHBOARD_RATE_LIMIT": "3", "MAX_CONNECTIONS": "2",
              "CONNECTION_LEASE": str(CONNECTION_LEASE)}  # fmt: skip
    return {**env, **bounds, **getattr(request, "param", {})}


# The longest a test here spends counting against one budget window, with room to spare.
COUNTING_SECONDS = 10


@pytest.fixture(autouse=True)
async def fresh_budget_window() -> None:
    """Budgets are counted in windows of each wall-clock minute: a test whose calls straddle two would see
    its count start again. Close to a minute's end, wait for the next minute to begin."""
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < COUNTING_SECONDS:
        await asyncio.sleep(left)


async def test_a_client_over_its_budget_gets_too_many_requests_and_when_to_retry(http, token) -> None:
    headers = {"Authorization": f"Bearer {token()}"}
    statuses = []
    for _ in range(4):
        async with http.post("/v1/notifications/ticket", headers=headers) as response:
            statuses.append(response.status)
            body = await response.json()
    assert statuses == [200, 200, 200, 429]
    assert (body["responseCode"], body["params"]["err"]) == ("TOO_MANY_REQUESTS", "TOO_MANY_REQUESTS")
    assert 1 <= int(response.headers["Retry-After"]) <= 60


async def test_one_users_budget_does_not_limit_another(call: Call) -> None:
    for _ in range(4):
        await call("POST", "/v1/notifications/ticket")
    status, _ = await call("POST", "/v1/notifications/ticket", user="someone-else")
    assert status == 200


async def test_dashboard_reads_are_budgeted_so_a_loop_cannot_load_the_source(call: Call) -> None:
    statuses = [(await call("GET", "/v1/batches/batch-0001/dashboard"))[0] for _ in range(3)]
    statuses.append((await call("GET", "/v1/reports/jobs?batchId=batch-0001"))[0])
    assert statuses == [200, 200, 200, 429]


ROUTES = [
    ("GET", "/v1/mentor/batches", None),
    ("GET", "/v1/batches/batch-0001/dashboard", None),
    ("POST", "/v1/reports/course-progress", {"batchId": "no-such-batch"}),
    ("GET", f"/v1/reports/jobs/{JOB}", None),
    ("GET", "/v1/reports/jobs", None),
    ("GET", "/v1/notifications", None),
    ("POST", "/v1/notifications/ticket", None),
    ("GET", "/v1/notifications/stream", None),
    ("GET", "/v1/notifications/ws", None),
    ("GET", f"/v1/support/jobs/{JOB}/events", None),
    ("POST", f"/v1/support/jobs/{JOB}/replay", None),
    ("POST", "/v1/telemetry", {"events": []}),
    ("POST", "/dataset/v1/request/submit", {"request": {}}),
    ("GET", f"/dataset/v1/request/read/tag?requestId={JOB}", None),
    ("GET", "/dataset/v1/request/list/tag", None),
    ("POST", "/dataset/v1/request/search", {"request": {}}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_every_authenticated_route_spends_from_a_budget(
    http: aiohttp.ClientSession, token: Callable[..., str], method: str, path: str, body: Any
) -> None:
    headers = {"Authorization": f"Bearer {token('looping-user', 'SUPPORT')}"}
    for _ in range(3):
        await status_of(http, method, path, headers, body)
    status, answer_headers = await answer_of(http, method, path, headers, body)
    assert status == 429
    assert 1 <= int(answer_headers.get("Retry-After", "0")) <= 60


async def test_a_user_cannot_hold_more_sockets_and_streams_than_the_cap(http, socket_url, token, redis) -> None:
    bearer = {"Authorization": f"Bearer {token()}"}
    async with http.ws_connect(await socket_url()), http.get("/v1/notifications/stream", headers=bearer):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(await socket_url())
        assert refused.value.status == 429
        async with http.get("/v1/notifications/stream", headers=bearer) as third:
            assert (third.status, (await third.json())["params"]["err"]) == (429, "TOO_MANY_CONNECTIONS")
        async with http.ws_connect(await socket_url(user="someone-else")) as others:
            assert not others.closed

    # Both closed: their slots are free again once the hub has seen them go (not at the client's close).
    async def slots_free() -> bool:
        return await redis.zcard(keys.connections(MENTOR)) == 0

    await eventually(slots_free)
    async with http.ws_connect(await socket_url()) as freed:
        assert not freed.closed


@contextlib.asynccontextmanager
async def hub_process(env: dict[str, str]) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A second `hub serve` on the same Redis, as another instance behind the load balancer."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "serve", env={**os.environ, **env, "PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as probe:
            await wait_until_up(probe, base)
        yield process, base
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@pytest.mark.parametrize("env", [{"READ_RATE_LIMIT": "1000"}], indirect=True)
async def test_the_cap_holds_across_hubs_and_a_dead_hub_gives_its_slots_back(env, hub, token) -> None:
    headers = {"Authorization": f"Bearer {token()}"}
    here = str(hub.make_url("/v1/notifications/ws"))
    async with hub_process(env) as (other, base), aiohttp.ClientSession() as client:
        there = f"{base}/v1/notifications/ws"
        async with client.ws_connect(there, headers=headers), client.ws_connect(here, headers=headers):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(here, headers=headers)
            assert refused.value.status == 429
            other.send_signal(signal.SIGKILL)  # its socket's slot is never given back by the hub itself
            await other.wait()
            statuses = []
            for _ in range(2 * (CONNECTION_LEASE + 5)):  # its slot lapses within one lease
                statuses.append(await status_of(client, "GET", here, headers, None))
                if statuses[-1] == 101:
                    break
                await asyncio.sleep(0.5)
            assert statuses[-1] == 101 and set(statuses[:-1]) <= {429}
