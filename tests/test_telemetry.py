"""Telemetry v3 from the page: checked, kept in the sink, and forwarded to Sunbird without loss."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hub.config import Settings
from tests.helpers import MENTOR, Call

BATCH = "batch-0001"


def sink_events(settings: Settings) -> list[dict[str, Any]]:
    """What the telemetry sink (a JSON-lines file) holds."""
    sink = Path(settings.telemetry_path)
    return [json.loads(line) for line in sink.read_text().splitlines()] if sink.exists() else []


def set_aside(settings: Settings) -> str:
    """What the forwarder set aside because the endpoint refused it for good."""
    return Path(settings.telemetry_path + ".rejected").read_text()


def telemetry_batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"id": "api.sunbird.telemetry", "ver": "3.0", "params": {"msgid": "m-1"}, "ets": 1, "events": list(events)}


def interact_event(**changes: Any) -> dict[str, Any]:
    event = {
        "eid": "INTERACT",
        "ets": 1_732_435_200_000,
        "ver": "3.0",
        "mid": "INTERACT:test-1",
        "actor": {"id": MENTOR, "type": "User"},
        "context": {"channel": "diksha", "env": "course-dashboard", "pdata": {"id": "diksha.course-report-hub"}},
        "object": {"id": BATCH, "type": "CourseBatch"},
        "edata": {"type": "CLICK", "id": "download-report", "pageid": "course-dashboard"},
    }
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = event
        for part in parents:
            target = target[part]
        if value is None:
            del target[leaf]
        else:
            target[leaf] = value
    return event


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"edata__id": None}, "edata.id"),
        ({"actor__id": None}, "actor.id"),
        ({"ets": "yesterday"}, "ets"),
        ({"context__pdata": None}, "context.pdata.id"),
    ],
    ids=["no-edata-id", "no-actor-id", "ets-not-a-number", "no-pdata"],
)
async def test_telemetry_with_a_bad_event_is_refused_naming_the_field_and_nothing_is_kept(
    call: Call, settings: Settings, changes: dict[str, Any], field: str
) -> None:
    status, body = await call(
        "POST", "/v1/telemetry", json=telemetry_batch(interact_event(), interact_event(**changes))
    )
    assert status == 400
    assert body["responseCode"] == "CLIENT_ERROR"
    assert body["params"]["err"] == "INVALID_TELEMETRY"
    assert field in body["params"]["errmsg"]
    assert "Event 1" in body["params"]["errmsg"]
    assert sink_events(settings) == []


async def test_telemetry_that_is_not_json_is_a_client_error(call: Call) -> None:
    status, body = await call("POST", "/v1/telemetry", data=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400
    assert body["responseCode"] == "CLIENT_ERROR"
    assert body["params"]["errmsg"]


async def test_valid_events_are_kept_in_the_sink(call: Call, settings: Settings) -> None:
    status, body = await call(
        "POST", "/v1/telemetry", json=telemetry_batch(interact_event(), interact_event(mid="m-2"))
    )
    assert status == 200
    assert body["result"] == {"accepted": 2}
    assert [e["mid"] for e in sink_events(settings)] == ["INTERACT:test-1", "m-2"]


async def test_events_in_another_users_name_are_refused(call: Call, settings: Settings) -> None:
    status, body = await call("POST", "/v1/telemetry", json=telemetry_batch(interact_event(actor__id="someone-else")))
    assert status == 403
    assert body["params"]["err"] == "NOT_YOUR_TELEMETRY"
    assert sink_events(settings) == []


class SunbirdTelemetry:
    """A stand-in for Sunbird's telemetry API that is down for its first `down` requests."""

    def __init__(self, down: int, status: int) -> None:
        self.down = down
        self.status = status
        self.received: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.refused = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        if self.down:
            self.down -= 1
            self.refused.set()
            return web.json_response({"responseCode": "SERVER_ERROR"}, status=self.status)
        self.received.extend((await request.json())["events"])
        self.arrived.set()
        return web.json_response({"responseCode": "SUCCESS"})


@pytest.fixture
async def sunbird(request: pytest.FixtureRequest) -> AsyncIterator[tuple[SunbirdTelemetry, str]]:
    """Down (503) for its first request, or refusing it for good when a test asks for 400."""
    endpoint = SunbirdTelemetry(down=1, status=getattr(request, "param", 503))
    app = web.Application()
    app.router.add_post("/v1/telemetry", endpoint.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield endpoint, str(server.make_url("/v1/telemetry"))
    await server.close()


@pytest.fixture
def env(env: dict[str, str], sunbird: tuple[SunbirdTelemetry, str]) -> dict[str, str]:
    return {**env, "TELEMETRY_URL": sunbird[1]}


async def test_kept_events_reach_sunbird_after_it_comes_back(call: Call, sunbird: tuple[SunbirdTelemetry, str]) -> None:
    endpoint, _ = sunbird
    for mid in ("m-1", "m-2", "m-3"):
        await call("POST", "/v1/telemetry", json=telemetry_batch(interact_event(mid=mid)))
    async with asyncio.timeout(20):
        while len(endpoint.received) < 3:
            await endpoint.arrived.wait()
            endpoint.arrived.clear()
    assert [e["mid"] for e in endpoint.received] == ["m-1", "m-2", "m-3"]
    assert endpoint.down == 0, "the first attempt was refused and retried"


@pytest.mark.parametrize("sunbird", [400], indirect=True)
async def test_a_batch_sunbird_rejects_is_set_aside_and_later_events_still_go(
    call: Call, sunbird: tuple[SunbirdTelemetry, str], settings: Settings
) -> None:
    endpoint, _ = sunbird
    await call("POST", "/v1/telemetry", json=telemetry_batch(interact_event(mid="rejected")))
    async with asyncio.timeout(20):
        await endpoint.refused.wait()
        await call("POST", "/v1/telemetry", json=telemetry_batch(interact_event(mid="later")))
        while not endpoint.received:
            await endpoint.arrived.wait()
    assert [e["mid"] for e in endpoint.received] == ["later"]
    assert '"mid":"rejected"' in set_aside(settings)
