"""A PostgreSQL source that fails under a report: statements bounded in time, a server restart ridden out,
a part writer stuck on a server that stopped answering killed and replaced.

Each test has a throwaway cluster of its own, which it may restart. The faults are real: `pg_ctl restart`,
and a server process stopped with SIGSTOP. A part writer is caught mid-query by holding a lock on the
scores table, which only the report query reads: its server process then waits where the test can see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator

import asyncpg
import psutil
import pytest

from hub.config import Settings
from hub.embedded import restart_cluster, stop_cluster, throwaway_cluster
from hub.source import SourceUnavailable
from hub.source.postgres import PostgresSource
from hub.source.schema import TABLES
from jobs import parts
from tests.helpers import Call, next_event, running_worker

BATCH = "batch-0001"
SUBMIT = "/v1/reports/course-progress"
# How the report query starts (pg_stat_activity keeps only its first kilobyte).
REPORT_QUERY = "SELECT CASE WHEN substr(c.course_id, 1, 1)"


@pytest.fixture
def cluster() -> Iterator[str]:
    with throwaway_cluster() as dsn:
        yield dsn


@pytest.fixture
def env(env: dict[str, str], cluster: str) -> dict[str, str]:
    """Every report in the big lane, in two parts, each written by a process of its own."""
    return {**env, "SOURCE_URL": cluster, "SMALL_BATCH": "0", "REPORT_PARTS": "2", "REPORT_TIMEOUT": "60"}


@contextlib.asynccontextmanager
async def scores_locked(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """Holds the scores table exclusively until the block ends (or the server restarts)."""
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("BEGIN; LOCK TABLE assessment_scores IN ACCESS EXCLUSIVE MODE")
        yield admin
    finally:
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await admin.close()


async def waiting_writers(dsn: str, count: int) -> list[asyncpg.Record]:
    """The server processes (and client ports) of the part writers, once `count` of them wait for the lock.
    Read outside the lock holder's transaction, which would see one snapshot of pg_stat_activity."""
    observer = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(15):
            while True:
                found = await observer.fetch(
                    "SELECT pid, client_port FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND starts_with(query, $1)",
                    REPORT_QUERY,
                )
                if len(found) == count:
                    return found
                await asyncio.sleep(0.05)
    finally:
        await observer.close()


def writer_on_port(port: int) -> psutil.Process:
    """The part-writer process whose connection to PostgreSQL goes out from `port`."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if any(c.laddr.port == port for c in child.net_connections(kind="tcp")):
                return child
    raise AssertionError(f"no part writer has a connection from port {port}")


async def events_for(ws, seconds: float) -> list[str]:
    seen: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                seen.append((await ws.receive_json())["type"])
    return seen


async def test_a_statement_on_a_server_that_stopped_answering_fails_as_unavailable_within_the_timeout(
    cluster: str,
) -> None:
    admin = await asyncpg.connect(cluster)
    await admin.execute(TABLES)
    source = PostgresSource(cluster, timeout=1)
    try:
        await source.check()  # the pool's one connection
        (backend,) = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = 'course-report-hub'")
        os.kill(backend["pid"], signal.SIGSTOP)
        try:
            async with asyncio.timeout(10):
                with pytest.raises(SourceUnavailable, match="failed: TimeoutError"):
                    await source.participant_count(BATCH)
        finally:
            os.kill(backend["pid"], signal.SIGCONT)
    finally:
        await source.close()
        await admin.close()


async def test_a_postgres_restart_mid_report_is_ridden_out_and_the_next_report_is_unaffected(
    call: Call, http, socket_url, settings: Settings, cluster: str, monkeypatch, caplog
) -> None:
    monkeypatch.setattr(parts, "MIN_ROWS_PER_PART", 30)
    async with running_worker(settings), http.ws_connect(await socket_url()) as ws:
        async with scores_locked(cluster) as admin:
            data_directory = await admin.fetchval("SHOW data_directory")
            status, _ = await call("POST", SUBMIT, json={"batchId": BATCH})
            assert status == 202
            await waiting_writers(cluster, 2)  # both parts are mid-query
            await asyncio.to_thread(restart_cluster, data_directory)
        completed = await next_event(ws, "report.completed", within=30)
        after = await events_for(ws, 1)
        status, _ = await call("POST", SUBMIT, json={"batchId": BATCH})
        assert status == 202
        again = await next_event(ws, "report.completed", within=15)
    assert completed["rows"] == again["rows"] == 120
    assert "report.completed" not in after and "report.failed" not in after
    assert f"report {completed['jobId']}: the PostgreSQL source" in caplog.text
    assert "trying again" in caplog.text


async def test_a_part_writer_stuck_past_the_deadline_is_replaced_and_the_next_report_is_made(
    call: Call, http, socket_url, settings: Settings, cluster: str
) -> None:
    """One part writer in the lane, so the next report needs the very process that was stuck."""
    async with (
        running_worker(settings.with_(report_parts=1, report_timeout=3)),
        http.ws_connect(await socket_url()) as ws,
    ):
        async with scores_locked(cluster):
            await call("POST", SUBMIT, json={"batchId": BATCH})
            (backend,) = await waiting_writers(cluster, 1)
            stuck = writer_on_port(backend["client_port"])
            os.kill(backend["pid"], signal.SIGSTOP)  # the lock is released, the server process stays silent
        try:
            failed = await next_event(ws, "report.failed", within=15)
            status, _ = await call("POST", SUBMIT, json={"batchId": BATCH})
            assert status == 202
            completed = await next_event(ws, "report.completed", within=15)
        finally:
            os.kill(backend["pid"], signal.SIGCONT)
    assert failed["reason"] == "TIMED_OUT"
    assert not stuck.is_running()
    assert completed["rows"] == 120


async def test_while_the_source_is_away_its_routes_answer_503_with_retry_after_and_no_traceback(
    http, token, cluster: str, hub, caplog
) -> None:
    """A PostgreSQL restart or outage is a service that is away for a moment, not a crash of the hub."""
    headers = {"Authorization": f"Bearer {token()}"}
    async with http.get(f"/v1/batches/{BATCH}/dashboard", headers=headers) as response:
        assert response.status == 200  # the hub's pool holds a connection that the stop will cut
    admin = await asyncpg.connect(cluster)
    data_directory = await admin.fetchval("SHOW data_directory")
    await admin.close()
    await asyncio.to_thread(stop_cluster, data_directory)
    answers = []
    for method, path, body in (("GET", f"/v1/batches/{BATCH}/dashboard", None), ("GET", "/v1/mentor/batches", None),
                               ("POST", SUBMIT, {"batchId": BATCH})):  # fmt: skip
        async with http.request(method, path, json=body, headers=headers) as response:
            envelope = await response.json()
            answers.append((response.status, envelope["params"]["err"], response.headers.get("Retry-After")))
    assert answers == [(503, "SERVICE_UNAVAILABLE", "5")] * 3
    hubs_records = [record for record in caplog.records if record.name.startswith("hub.")]
    assert [record for record in hubs_records if record.exc_info] == []
    assert "the source is away" in caplog.text
