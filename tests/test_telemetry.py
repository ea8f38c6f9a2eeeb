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

from hub.config import ConfigError, Settings, load
from hub.telemetry import TelemetrySink
from tests.helpers import MENTOR, Call
from tests.scrape import moved, scrape

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


@pytest.mark.parametrize(
    ("sent", "says"),
    [
        (telemetry_batch(interact_event(ver="2.0")), "Event 0: 'ver' must be '3.0'"),
        (telemetry_batch(interact_event(edata__secret="x")), "'edata.secret' is not a field of INTERACT events"),
        (telemetry_batch(interact_event(eid="SEARCH")), "'eid' must be one of"),
        ({**telemetry_batch(interact_event()), "ver": "2.0"}, "'ver': '3.0'"),
        ({**telemetry_batch(interact_event()), "id": "api.other"}, "'id': 'api.sunbird.telemetry'"),
        ({**telemetry_batch(interact_event()), "params": {}}, "'params.msgid'"),
    ],
    ids=["event-ver-2", "unknown-edata-field", "unknown-eid", "batch-ver-2", "batch-id", "no-msgid"],
)
async def test_telemetry_outside_the_v3_schemas_is_refused(
    call: Call, settings: Settings, sent: dict[str, Any], says: str
) -> None:
    status, body = await call("POST", "/v1/telemetry", json=sent)
    assert (status, body["params"]["err"]) == (400, "INVALID_TELEMETRY")
    assert says in body["params"]["errmsg"]
    assert sink_events(settings) == []


async def test_every_v3_event_the_hub_takes_is_accepted_with_its_schemas_fields(call: Call) -> None:
    edata = {
        "START": {"type": "app", "mode": "play", "duration": 0, "pageid": "course-dashboard"},
        "END": {"type": "app", "duration": 12, "summary": []},
        "IMPRESSION": {"type": "view", "pageid": "course-dashboard", "uri": "/", "visits": []},
        "INTERACT": {"type": "CLICK", "id": "download-report", "subtype": "", "target": {}},
        "LOG": {"type": "api_call", "level": "INFO", "message": "ok", "params": []},
        "ERROR": {"err": "NETWORK", "errtype": "SYSTEM", "stacktrace": "-", "pageid": "course-dashboard"},
    }
    events = [interact_event(eid=eid, mid=f"{eid}:1", edata=fields) for eid, fields in edata.items()]
    status, body = await call("POST", "/v1/telemetry", json=telemetry_batch(*events))
    assert (status, body["result"]) == (200, {"accepted": 6})


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
def env(env: dict[str, str], sunbird: tuple[SunbirdTelemetry, str], request: pytest.FixtureRequest) -> dict[str, str]:
    """Forwarding to the stand-in; a test may change settings with `parametrize("env", [{...}], indirect=True)`."""
    return {**env, "TELEMETRY_URL": sunbird[1], **getattr(request, "param", {})}


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


async def test_an_event_kept_after_a_line_torn_by_a_killed_process_still_reaches_sunbird(
    call: Call, sunbird: tuple[SunbirdTelemetry, str], settings: Settings
) -> None:
    endpoint, _ = sunbird
    sink = Path(settings.telemetry_path)
    sink.parent.mkdir(parents=True, exist_ok=True)
    torn = json.dumps(interact_event(mid="torn")).encode()[:40]  # what a hub killed mid-append left
    await asyncio.to_thread(sink.write_bytes, torn)
    await call("POST", "/v1/telemetry", json=telemetry_batch(interact_event(mid="after-the-kill")))
    async with asyncio.timeout(20):
        while not endpoint.received:
            await endpoint.arrived.wait()
    assert [e["mid"] for e in endpoint.received] == ["after-the-kill"]


def padded_event(mid: str) -> dict[str, Any]:
    """About a kilobyte: a few make a segment, a few more fill a small store."""
    return interact_event(mid=mid, context__cdata=[{"type": "Padding", "id": "x" * 1000}])


@pytest.mark.parametrize(
    "env", [{"TELEMETRY_URL": "", "TELEMETRY_ROTATE_BYTES": "2048", "TELEMETRY_MAX_BYTES": "8192"}], indirect=True
)
async def test_the_store_rotates_and_refuses_events_when_full_rather_than_fill_the_disk(
    call: Call, http, token, settings: Settings
) -> None:
    statuses = [(await call("POST", "/v1/telemetry", json=telemetry_batch(padded_event(f"m-{i}"))))[0]
                for i in range(10)]  # fmt: skip
    accepted = statuses.count(200)
    assert accepted >= 4 and statuses == [200] * accepted + [503] * (len(statuses) - accepted)
    headers = {"Authorization": f"Bearer {token()}"}
    async with http.post("/v1/telemetry", json=telemetry_batch(padded_event("one-more")), headers=headers) as full:
        assert (full.status, (await full.json())["params"]["err"]) == (503, "TELEMETRY_FULL")
        assert int(full.headers["Retry-After"]) > 0
    sink = TelemetrySink(settings)
    sizes = [path.stat().st_size for path in [sink.path, *sink.segments().values()] if path.exists()]
    assert len(sink.segments()) >= 2
    assert sum(sizes) <= 8192
    assert max(sizes) < 2048 + len(json.dumps(padded_event("m-0"))) + 1


@pytest.mark.parametrize("env", [{"TELEMETRY_ROTATE_BYTES": "2048"}], indirect=True)
async def test_rotated_events_reach_sunbird_in_order_and_sent_segments_are_deleted(
    call: Call, sunbird: tuple[SunbirdTelemetry, str], settings: Settings
) -> None:
    endpoint, _ = sunbird
    mids = [f"m-{i}" for i in range(8)]
    for mid in mids:
        await call("POST", "/v1/telemetry", json=telemetry_batch(padded_event(mid)))
    sink = TelemetrySink(settings)
    assert len(sink.segments()) >= 3
    for _ in range(150):  # 30 s at most: one refusal and its back-off, then a batch per segment
        if len(endpoint.received) == len(mids) and not sink.segments():
            break
        await asyncio.sleep(0.2)
    assert [e["mid"] for e in endpoint.received] == mids
    assert sink.segments() == {}


def test_telemetry_is_kept_apart_from_report_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TELEMETRY_PATH"):
        load({"STORAGE_URL": f"file://{tmp_path}", "TELEMETRY_PATH": str(tmp_path / "reports" / "t.jsonl")})


async def test_telemetry_accepted_and_refused_are_counted(call: Call, hub) -> None:
    url = str(hub.make_url("/metrics"))
    before = await scrape(url)
    await call("POST", "/v1/telemetry", json=telemetry_batch(interact_event(), interact_event()))
    await call("POST", "/v1/telemetry", json=telemetry_batch(interact_event(eid="SEARCH")))
    after = await scrape(url)
    assert moved(before, after, "hub_telemetry_events_accepted_total") == 2
    assert moved(before, after, "hub_telemetry_batches_refused_total", code="INVALID_TELEMETRY") == 1
