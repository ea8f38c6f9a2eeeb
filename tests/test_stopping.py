"""A hub told to stop does stop: a deploy or a restart must never hang on a background task that carried
on after being cancelled (Python 3.11's `asyncio.wait_for`, inside every Redis command the hub sends, can
drop a cancellation; see `hub/tasks.py`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from hub import tasks
from hub.app import create_app
from hub.config import Settings
from hub.embedded import free_port
from tests.helpers import Call, eventually

# Each stop lands wherever the sweeper happens to be; about one in ten used to land where a dropped
# cancellation hung the shutdown for good, so this many stops all but surely met one.
STOPS = 40


async def sweeps_so_far(redis: Redis) -> int:
    """Every sweep starts by asking Redis for the time, and nothing else in these tests does."""
    return int((await redis.info("commandstats")).get("cmdstat_time", {}).get("calls", 0))


@pytest.mark.parametrize("env", [{"SWEEP_INTERVAL": "0.001"}], indirect=True)
async def test_a_hub_stops_however_busy_its_sweeper_is_with_redis(call: Call, settings: Settings, redis: Redis) -> None:
    status, _ = await call("POST", "/v1/reports/course-progress", json={"batchId": "batch-0001"})
    assert status == 202  # a job no worker takes: every sweep reads it, command after command
    for _ in range(STOPS):
        server = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
        await server.start_server()
        await eventually(_swept_since(redis, await sweeps_so_far(redis)))
        async with asyncio.timeout(10):
            await server.close()


def _swept_since(redis: Redis, swept: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await sweeps_so_far(redis) > swept

    return check


async def test_a_task_that_carries_on_after_its_cancellation_is_stopped_all_the_same() -> None:
    waiting = asyncio.Event()

    async def stubborn() -> None:
        waiting.set()
        with contextlib.suppress(asyncio.CancelledError):  # what `wait_for` does when a result lands too
            await asyncio.Event().wait()
        await asyncio.Event().wait()

    task = asyncio.create_task(stubborn())
    await waiting.wait()
    async with asyncio.timeout(10):
        await tasks.stop(task)
    assert task.cancelled()
