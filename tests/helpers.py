"""What tests share beyond fixtures: the test users and secret, a worker in the test's event loop, and
reading a socket up to the event a test waits for."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from arq.worker import Worker

from hub import tasks
from hub.config import Settings
from jobs.worker import create_worker

SECRET = "test-secret-that-is-long-enough-for-hs256"
LINK_SECRET = "test-link-secret-no-token-can-be-signed-with"
MENTOR = "mentor-0001"
SUPPORT = "support-0001"

# `await call("POST", path, json=..., user=...)` -> (status, envelope); see the `call` fixture.
Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]

# Debian's Chromium, driven by Playwright (which cannot download a browser of its own here).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # A page the test routes in (not served by a hub) opening a socket to 127.0.0.1 meets Chromium's
    # Local Network Access checks; they guard real users' routers, not this loopback-only test.
    "--disable-features=LocalNetworkAccessChecks,LocalNetworkAccessChecksWebSockets",
]
BROWSER_WAIT_MS = 15_000  # a report of 120 rows takes well under a second; this only bounds a broken run


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed; CI must install it (apt-get install -y chromium).")
    pytest.skip("Chromium is not installed: apt-get install chromium")


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Worker]:
    """An arq worker in this event loop, as `hub dev` runs it."""
    running = create_worker(settings, handle_signals=False)
    task = asyncio.create_task(running.main())
    try:
        yield running
    finally:
        await tasks.stop(task)
        with contextlib.suppress(asyncio.CancelledError):  # a job cut short re-raises its cancellation here
            await running.close()


async def worker_started(worker: Worker, within: float = 10) -> None:
    """Until the worker has run its start-up (opened and checked its source and storage)."""
    async with asyncio.timeout(within):
        while "services" not in worker.ctx:  # noqa: ASYNC110 (arq sets it, with no event to wait on)
            await asyncio.sleep(0.01)


async def job_status(call: Call, job_id: str, wanted: str, within: float) -> dict[str, Any]:
    """The job as its requester reads it, once it has the wanted status."""
    async with asyncio.timeout(within):
        while True:
            status, body = await call("GET", f"/v1/reports/jobs/{job_id}")
            if status == 200 and body["result"]["status"] == wanted:
                return body["result"]
            await asyncio.sleep(0.2)


async def next_event(ws: aiohttp.ClientWebSocketResponse, event_type: str, within: float = 15) -> dict:
    """Reads frames until one of `event_type` arrives (progress frames may come first)."""
    async with asyncio.timeout(within):
        while True:
            frame = await ws.receive_json()
            if frame["type"] == event_type:
                return frame


async def next_sse_event(stream: aiohttp.ClientResponse, within: float = 10) -> str:
    """The next event of a Server-Sent Events stream as sent (`id:` and `data:` lines), past heartbeats."""
    async with asyncio.timeout(within):
        while True:
            chunk = (await stream.content.readuntil(b"\n\n")).decode()
            if "data: " in chunk:
                return chunk


def system_tool(name: str, install: str) -> str:
    """The path of a program the tests drive; CI must have it (`.ci/run` installs it), elsewhere its tests skip."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed; CI must install it ({install}).")
    pytest.skip(f"{name} is not installed: {install}")


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15) -> None:
    """Waits for a state no event announces (a job taken by a worker, a worker started), looking again
    every few milliseconds."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


@contextlib.contextmanager
def part_writers_stopped() -> Iterator[None]:
    """This process's part writers stopped (SIGSTOP) as a hung process is, and let go again on leaving:
    a report started meanwhile stays PROCESSING, its worker alive and its slot taken."""
    writers = [child for child in psutil.Process().children(recursive=True) if _is_part_writer(child)]
    assert writers, "the worker has started its part writers"
    for writer in writers:
        writer.suspend()
    try:
        yield
    finally:
        for writer in writers:
            with contextlib.suppress(psutil.NoSuchProcess):
                writer.resume()


def _is_part_writer(process: psutil.Process) -> bool:
    """A live part writer (a process an earlier test's worker left may be a zombie, with no command line)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def hub_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "hub", *args]


async def start_hub_process(*args: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """`hub <args>` as its own process, its log written to `log` for the test to read."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(*hub_command(*args), env={**os.environ, **env}, stderr=out,
                                                    stdout=out)  # fmt: skip


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


async def wait_until_ready(base_url: str, within: float = 30, probe: str = "/readyz") -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(within):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{base_url}{probe}") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


def libfaketime() -> str:
    """The preload library of Debian's libfaketime: a process run with it sees the clock FAKETIME says."""
    found = subprocess.run(["dpkg", "-L", "libfaketime"], capture_output=True, text=True).stdout.split()
    return next(path for path in found if path.endswith("libfaketime.so.1"))


class SilentProxy:
    """A TCP proxy that can go silent the way a NAT or a load balancer does when it drops its connections
    (or a phone moves from Wi-Fi to mobile data): whatever it carries is no longer forwarded, yet no
    connection is closed or reset. Connections made after that are carried as usual. `go_silent(b"GET
    /v1/notifications/ws")` silences only the connections that opened with those bytes (the client speaks
    first, as in Redis and HTTP)."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._pumps: dict[asyncio.Task[None], bytes] = {}
        self._server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._carry, "127.0.0.1", 0)
        self.port: int = self._server.sockets[0].getsockname()[1]

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._held += [writer, upstream_writer]
        opening = await reader.read(65536)
        upstream_writer.write(opening)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pump = asyncio.create_task(self._pump(source, sink))
            self._pumps[pump] = opening
            pump.add_done_callback(lambda done: self._pumps.pop(done, None))

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()

    def go_silent(self, opened_with: bytes = b"") -> None:
        for pump, opening in list(self._pumps.items()):
            if opening.startswith(opened_with):
                pump.cancel()

    async def close(self) -> None:
        self.go_silent()
        for writer in self._held:
            writer.close()
        if self._server is not None:
            self._server.close()
