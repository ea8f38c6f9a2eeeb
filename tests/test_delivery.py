"""The delivery promise: stored before pushed, resumable with no gap and no duplicate, on every socket."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from hub import events
from hub.events import EventLog
from tests.helpers import MENTOR, Call, job_status, next_event, running_worker

BATCH = "batch-0001"
SUBMIT = "/v1/reports/course-progress"


async def drain(ws: aiohttp.ClientWebSocketResponse, quiet: float = 0.5) -> list[dict]:
    """Every frame that arrives until the socket has been quiet for `quiet` seconds."""
    frames = []
    while True:
        try:
            frames.append(await asyncio.wait_for(ws.receive_json(), quiet))
        except TimeoutError:
            return frames


async def test_a_socket_that_drops_before_completion_gets_the_completion_exactly_once_on_resume(
    call: Call, http, socket_url, settings
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        _, clicked = await call("POST", SUBMIT, json={"batchId": BATCH})
        submitted = await next_event(ws, "report.submitted")
    async with running_worker(settings):
        await job_status(call, clicked["result"]["jobId"], "SUCCESS", within=15)  # while nobody listens
        async with http.ws_connect(await socket_url(last_event_id=submitted["id"])) as ws:
            frames = await drain(ws)
    types = [f["type"] for f in frames]
    assert types.count("report.completed") == 1
    assert "report.submitted" not in types
    ids = [events.parse_id(f["id"]) for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_resume_gives_missed_events_then_live_ones_without_a_gap(call: Call, http, socket_url, settings) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        await call("POST", SUBMIT, json={"batchId": BATCH})
        submitted = await next_event(ws, "report.submitted")
    await call("POST", SUBMIT, json={"batchId": BATCH})  # missed: a duplicate while away
    async with http.ws_connect(await socket_url(last_event_id=submitted["id"])) as ws:
        missed = await next_event(ws, "report.duplicate")
        async with running_worker(settings):
            live = await next_event(ws, "report.completed")
        rest = await drain(ws, quiet=0.3)
    assert events.parse_id(missed["id"]) < events.parse_id(live["id"])
    assert all(f["type"] != "report.completed" for f in rest)


async def test_every_open_socket_of_the_user_receives_every_event(call: Call, http, socket_url) -> None:
    async with http.ws_connect(await socket_url()) as first, http.ws_connect(await socket_url()) as second:
        await call("POST", SUBMIT, json={"batchId": BATCH})
        await call("POST", SUBMIT, json={"batchId": BATCH})
        for ws in (first, second):
            assert (await next_event(ws, "report.submitted"))["batchId"] == BATCH
            assert (await next_event(ws, "report.duplicate"))["batchId"] == BATCH


async def test_a_user_never_receives_another_users_events(call: Call, http, socket_url) -> None:
    async with http.ws_connect(await socket_url(user="someone-else")) as stranger:
        await call("POST", SUBMIT, json={"batchId": BATCH})
        assert await drain(stranger, quiet=0.5) == []


async def test_polling_returns_the_same_events_oldest_first(call: Call) -> None:
    await call("POST", SUBMIT, json={"batchId": BATCH})
    await call("POST", SUBMIT, json={"batchId": BATCH})
    status, body = await call("GET", "/v1/notifications")
    assert status == 200
    polled = body["result"]["events"]
    assert [e["type"] for e in polled] == ["report.submitted", "report.duplicate"]
    _, after_first = await call("GET", f"/v1/notifications?after={polled[0]['id']}")
    assert after_first["result"]["events"] == polled[1:]
    assert after_first["result"]["lastEventId"] == polled[1]["id"]


async def test_server_sent_events_resume_from_last_event_id(call: Call, http, token) -> None:
    await call("POST", SUBMIT, json={"batchId": BATCH})
    await call("POST", SUBMIT, json={"batchId": BATCH})
    _, polled = await call("GET", "/v1/notifications")
    first, second = polled["result"]["events"]
    headers = {"Authorization": f"Bearer {token()}", "Last-Event-ID": first["id"]}
    async with http.get("/v1/notifications/stream", headers=headers) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        lines: list[str] = []
        async with asyncio.timeout(5):
            while "data: " not in "".join(lines):
                lines.append((await response.content.readline()).decode())
            lines.append((await response.content.readline()).decode())
    assert f"id: {second['id']}\n" in lines
    data = next(line for line in lines if line.startswith("data: "))
    assert orjson.loads(data[6:]) == second


async def test_a_resume_point_older_than_what_is_kept_starts_with_resync(http, socket_url, redis) -> None:
    log = EventLog(redis, retention=10, keep_seconds=600)
    ids = [await log.emit(MENTOR, "job-x", events.draft("report.progress", "job-x", BATCH, rows=i)) for i in range(300)]
    async with http.ws_connect(await socket_url(last_event_id=ids[0])) as ws:
        assert await ws.receive_json() == {"type": "resync"}
        assert await drain(ws, quiet=0.3) == []
        fresh = await log.emit(MENTOR, "job-x", events.draft("report.progress", "job-x", BATCH, rows=300))
        assert (await ws.receive_json())["id"] == fresh


async def test_a_malformed_last_event_id_is_a_client_error(call: Call) -> None:
    status, body = await call("GET", "/v1/notifications?after=yesterday")
    assert status == 400
    assert body["params"]["err"] == "INVALID_EVENT_ID"


async def test_support_reads_the_timeline_and_replays_the_last_notification(
    call: Call, http, socket_url, token, settings
) -> None:
    support = {"Authorization": f"Bearer {token('support-1', 'SUPPORT')}"}
    async with http.ws_connect(await socket_url()) as ws:
        _, submitted = await call("POST", SUBMIT, json={"batchId": BATCH})
        job_id = submitted["result"]["jobId"]
        async with running_worker(settings):
            completed = await next_event(ws, "report.completed")
        status, timeline = await call("GET", f"/v1/support/jobs/{job_id}/events", user=None, headers=support)
        assert status == 200
        types = [e["type"] for e in timeline["result"]["events"]]
        assert types[0] == "report.submitted" and types[-1] == "report.completed"
        status, _ = await call("POST", f"/v1/support/jobs/{job_id}/replay", user=None, headers=support)
        assert status == 200
        replayed = await next_event(ws, "report.completed")
    assert replayed["replayed"] is True
    assert replayed["id"] != completed["id"]
    assert replayed["downloadUrl"].split("?")[0] == completed["downloadUrl"].split("?")[0]
    assert replayed["expiresAt"] >= completed["expiresAt"]
    assert replayed["ts"] > completed["ts"]
    async with aiohttp.ClientSession() as anonymous, anonymous.get(replayed["downloadUrl"]) as response:
        assert response.status == 200


async def test_a_socket_is_closed_when_the_token_it_was_opened_with_expires(http, token) -> None:
    headers = {"Authorization": f"Bearer {token(MENTOR, ttl=2)}"}
    async with http.post("/v1/notifications/ticket", headers=headers) as response:
        ticket = (await response.json())["result"]["ticket"]
    async with http.ws_connect(f"/v1/notifications/ws?ticket={ticket}") as ws:
        async with asyncio.timeout(6):
            message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert message.data == 4001
