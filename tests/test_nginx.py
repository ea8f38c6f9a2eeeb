"""The hub behind DIKSHA's public nginx with the operator's locations (deploy/sunbird/nginx/): the ticket
and the click carry the gateway's headers, the WebSocket is upgraded, the SSE stream passes each event
at once, and the hub's heartbeat beats nginx's read timeout."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from hub.config import Settings
from tests.helpers import MENTOR, next_event, next_sse_event
from tests.nginx import LOCATIONS, nginx_in_front

BATCH = "batch-0001"
# DIKSHA's nginx cuts /api/ after this long without a byte (sunbird-devops, nginx-public-ingress).
DIKSHA_READ_TIMEOUT_SECONDS = 70


@pytest.fixture
async def front(hub: TestServer, tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of the hub through nginx, as a browser on DIKSHA's host is."""
    async with (
        nginx_in_front(hub.port, tmp_path / "nginx") as base,
        # A page of the portal's host, as a browser sends it: Origin is that host, with its port.
        aiohttp.ClientSession(base_url=base + "/report-hub/", headers={"Origin": base}) as session,
    ):
        yield session


@pytest.fixture
def gateway(token: Callable[..., str]) -> dict[str, str]:
    return {"x-authenticated-user-token": token(MENTOR), "X-Authenticated-Userid": MENTOR}


async def ticket(front: aiohttp.ClientSession, gateway: dict[str, str], lang: str = "en") -> str:
    async with front.post(f"v1/notifications/ticket?lang={lang}", headers=gateway) as response:
        assert response.status == 200
        return (await response.json())["result"]["ticket"]


async def click(front: aiohttp.ClientSession, gateway: dict[str, str]) -> int:
    async with front.post("v1/reports/course-progress", headers=gateway, json={"batchId": BATCH}) as response:
        return response.status


async def test_a_websocket_opened_through_nginx_hears_a_click_made_through_it(front, gateway) -> None:
    async with front.ws_connect(f"v1/notifications/ws?ticket={await ticket(front, gateway)}") as ws:
        assert await click(front, gateway) == 202
        submitted = await next_event(ws, "report.submitted")
    assert submitted["messageKey"] == "hub.report.submitted"


async def test_an_sse_stream_through_nginx_passes_each_event_as_it_happens(front, gateway) -> None:
    async with front.get(f"v1/notifications/stream?ticket={await ticket(front, gateway, 'hi')}") as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        await stream.content.readuntil(b"retry: 3000\n\n")
        assert await click(front, gateway) == 202
        event = await next_sse_event(stream)  # a buffering proxy would hold it until far more had come
    assert '"type":"report.submitted"' in event
    assert "आपका डाउनलोड शुरू हो गया है" in event


def test_the_heartbeat_comes_before_either_nginx_gives_up_on_a_quiet_stream() -> None:
    timeouts = [int(seconds) for seconds in re.findall(r"proxy_read_timeout (\d+)s;", LOCATIONS.read_text())]
    assert len(timeouts) == 2
    assert Settings.heartbeat_seconds < min([*timeouts, DIKSHA_READ_TIMEOUT_SECONDS])
