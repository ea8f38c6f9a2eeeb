"""A client that never reads must not hold the hub.

A raw TCP client opens a real WebSocket (or event stream), reads the response headers, and then never
reads again while megabytes of its user's events pile up. The hub must keep serving everyone else, let
go of the stuck connection within `SEND_TIMEOUT` (its handler gone from `hub_open_connections` and its socket
closed, so it holds neither a task nor buffers), and lose nothing: the slow user, coming back with the
last id it really got, receives every event it missed, in order and once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import orjson
import psutil
import pytest
from aiohttp.test_utils import TestServer

from hub import events
from hub.events import EventLog
from tests.helpers import Call

SLOW = "slow-reader"
OTHER = "other-user"
BATCH = "batch-0001"
SEND_TIMEOUT = 2
MARGIN = 3.0  # the hub must have let go by SEND_TIMEOUT + MARGIN after the last event was stored
EVENTS = 1000  # x ~10 KB: far more than the hub's socket send buffer (tcp_wmem max, 4 MB) and the client's window
PADDING = "x" * 10_000
PROMPT = 1.0  # seconds another user may wait for its own event, or an operator for /healthz


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    # Every flooded event stays resumable; a stuck client is let go of sooner than in production.
    return {**env, "EVENT_RETENTION": str(EVENTS * 2), "SEND_TIMEOUT": str(SEND_TIMEOUT)}


@dataclass
class RawClient:
    """A client that reads its response headers and then nothing, until told to at the very end."""

    sock: socket.socket
    early: bytes  # body bytes that came in with the headers

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    async def read_to_end(self, within: float) -> tuple[bytes, str]:
        """Everything still readable, and how the stream ended: `eof` or `reset`."""
        loop = asyncio.get_running_loop()
        data = bytearray(self.early)
        async with asyncio.timeout(within):
            while True:
                try:
                    chunk = await loop.sock_recv(self.sock, 1 << 16)
                except ConnectionResetError:
                    return bytes(data), "reset"
                if not chunk:
                    return bytes(data), "eof"
                data += chunk


async def open_raw(server: TestServer, path: str, headers: str, status: bytes) -> RawClient:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # a small window, no kernel autotuning
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", server.port))
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n{headers}\r\n"
    await loop.sock_sendall(sock, request.encode())
    head = b""
    async with asyncio.timeout(5):
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(sock, 1024)
            assert chunk, "the hub closed the connection before answering"
            head += chunk
    head, _, early = head.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status), head.decode(errors="replace")
    return RawClient(sock, early)


def websocket_ids(data: bytes) -> list[str]:
    """Event ids of the complete text frames of an unmasked server-to-client WebSocket stream."""
    ids: list[str] = []
    at = 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        start = at + 2
        if length == 126:
            length, start = int.from_bytes(data[start : start + 2], "big"), start + 2
        elif length == 127:
            length, start = int.from_bytes(data[start : start + 8], "big"), start + 8
        if start + length > len(data) or opcode == 0x8:
            break  # cut short, or a close frame
        if opcode == 0x1:
            ids.append(events.frame_id(data[start : start + length].decode()))
        at = start + length
    return ids


def event_stream_ids(data: bytes) -> list[str]:
    """Event ids of the complete events of a chunked `text/event-stream` body (a partial last chunk counts:
    a browser dispatches each event as soon as its blank line arrives)."""
    body = bytearray()
    at = 0
    while (end := data.find(b"\r\n", at)) != -1:
        size = int(data[at:end].split(b";")[0], 16)
        if size == 0:
            break
        body += data[end + 2 : end + 2 + size]
        at = end + 2 + size + 2
    blocks = body.decode(errors="replace").split("\n\n")[:-1]  # the last one is not finished
    return [line[4:] for block in blocks for line in block.split("\n") if line.startswith("id: ")]


async def open_sockets_gauge(http: aiohttp.ClientSession) -> float:
    async with http.get("/metrics") as response:
        text = await response.text()
    return sum(float(line.split()[1]) for line in text.splitlines() if line.startswith("hub_open_connections{"))


def hub_holds_connection_from(port: int) -> bool:
    """Whether this process (the hub runs in it) still has a socket whose peer is the client's port."""
    return any(c.raddr and c.raddr.port == port for c in psutil.Process().net_connections(kind="tcp"))


@dataclass
class Probe:
    """Another user and an operator, served while the slow client is stuck; their waits in seconds."""

    event: list[float] = field(default_factory=list)
    healthz: list[float] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, log: EventLog) -> None:
        rows = 0
        while not self.stop.is_set():  # stops between rounds: no event of OTHER in flight when its socket closes
            began = time.perf_counter()
            sent = await log.emit(OTHER, "job-other", events.draft("report.progress", "job-other", BATCH, rows=rows))
            async with asyncio.timeout(5):
                while (await ws.receive_json())["id"] != sent:
                    pass
            self.event.append(time.perf_counter() - began)
            began = time.perf_counter()
            async with http.get("/healthz") as response:
                assert response.status == 200
            self.healthz.append(time.perf_counter() - began)
            rows += 1
            with contextlib.suppress(TimeoutError):  # pacing, so that the probe does not become a flood of its own
                await asyncio.wait_for(self.stop.wait(), 0.05)


async def wait_until(condition: Callable[[], Awaitable[bool]], deadline: float, what: str) -> None:
    while not await condition():
        assert time.monotonic() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.05)


async def flood_a_client_that_never_reads(
    http: aiohttp.ClientSession, socket_url, log: EventLog, raw: RawClient
) -> list[str]:
    """Stores EVENTS big events for SLOW and checks that the hub lets go of `raw` in time while it keeps
    serving another user's socket and /healthz promptly. Returns the ids stored, oldest first."""
    async with http.ws_connect(await socket_url(user=OTHER)) as other:
        assert await open_sockets_gauge(http) == 2
        probe = Probe()
        prober = asyncio.create_task(probe.run(http, other, log))
        try:
            ids = []
            for i in range(EVENTS):
                event = events.draft("report.progress", "job-slow", BATCH, rows=i, padding=PADDING)
                ids.append(await log.emit(SLOW, "job-slow", event))
            deadline = time.monotonic() + SEND_TIMEOUT + MARGIN

            async def handler_gone() -> bool:
                return await open_sockets_gauge(http) == 1

            async def connection_gone() -> bool:
                return not hub_holds_connection_from(raw.port)

            await wait_until(handler_gone, deadline, "the slow client's handler is still open")
            await wait_until(connection_gone, deadline, "the hub still holds the slow client's connection")
            assert not prober.done(), prober
            probe.stop.set()
            await asyncio.wait_for(prober, 5)
        finally:
            prober.cancel()
            await asyncio.gather(prober, return_exceptions=True)
        assert probe.event and max(probe.event) < PROMPT, f"another user waited {max(probe.event):.2f}s"
        assert max(probe.healthz) < PROMPT, f"/healthz took {max(probe.healthz):.2f}s"
    return ids


def check_what_it_got(got: list[str], ids: list[str]) -> None:
    assert got == ids[: len(got)], "what the slow client did get came in order, without a gap or a duplicate"
    assert len(got) < EVENTS, "the client was not slow after all: raise EVENTS"


@pytest.fixture
async def log(redis, settings) -> EventLog:
    return EventLog(redis, settings.event_retention, settings.records_kept_seconds)


async def stuck_then_read(
    http: aiohttp.ClientSession, socket_url, log: EventLog, raw: RawClient
) -> tuple[list[str], bytes]:
    """Floods the client that never reads, then reads what the hub had sent before it let go (to the end of
    the stream, which the hub must have closed). Returns the ids stored and the bytes received."""
    try:
        ids = await flood_a_client_that_never_reads(http, socket_url, log, raw)
        data, ending = await raw.read_to_end(within=10)
    finally:
        raw.sock.close()
    assert ending in ("eof", "reset")
    return ids, data


async def test_a_websocket_client_that_never_reads_is_dropped_in_time_and_resumes_without_loss(
    hub: TestServer, http: aiohttp.ClientSession, socket_url, log: EventLog
) -> None:
    start = await log.tail(SLOW)
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    raw = await open_raw(hub, await socket_url(user=SLOW), upgrade, b"101")
    ids, data = await stuck_then_read(http, socket_url, log, raw)
    got = websocket_ids(data)
    check_what_it_got(got, ids)

    async with http.ws_connect(await socket_url(user=SLOW, last_event_id=got[-1] if got else start)) as ws:
        frames: list[dict] = []
        async with asyncio.timeout(15):
            while not frames or frames[-1]["id"] != ids[-1]:
                frames.append(orjson.loads(await ws.receive_str()))
    assert [f["id"] for f in frames] == ids[len(got) :]
    assert [f["rows"] for f in frames] == list(range(len(got), EVENTS))
    assert all(f["padding"] == PADDING for f in frames)


async def test_an_event_stream_client_that_never_reads_is_dropped_in_time_and_polls_what_it_missed(
    hub: TestServer, http: aiohttp.ClientSession, socket_url, log: EventLog, call: Call
) -> None:
    start = await log.tail(SLOW)
    path = (await socket_url(user=SLOW)).replace("/v1/notifications/ws?", "/v1/notifications/stream?")
    raw = await open_raw(hub, path, "Accept: text/event-stream\r\n", b"200")
    ids, data = await stuck_then_read(http, socket_url, log, raw)
    got = event_stream_ids(data)
    check_what_it_got(got, ids)

    polled: list[dict] = []
    after = got[-1] if got else start
    while True:  # as a client does when sockets are blocked: page through `?after=` until nothing is new
        status, body = await call("GET", f"/v1/notifications?after={after}", user=SLOW)
        assert status == 200 and not body["result"]["resync"]
        if not body["result"]["events"]:
            break
        polled.extend(body["result"]["events"])
        after = body["result"]["lastEventId"]
    assert [e["id"] for e in polled] == ids[len(got) :]
    assert [e["rows"] for e in polled] == list(range(len(got), EVENTS))
