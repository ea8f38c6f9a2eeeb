"""Dates as a real source holds them: PostgreSQL `date` and `timestamptz` columns, ISO text in its
several shapes, and instants shown as the day they were where the report is read (`REPORT_TIMEZONE`).
Each source writes the same rows; the CSVs must be the same bytes. And the file is named by that day.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest

from hub.source import Source
from hub.source.postgres import PostgresSource
from hub.source.schema import LAST_KEY, TABLES
from hub.source.sqlite import SqliteSource
from tests import pg_cluster
from tests.helpers import libfaketime

postgres_server = pg_cluster.postgres_server
pg_url = pg_cluster.pg_url

BATCH, COURSE = "batch-dates", "do_course_dates"
INDIA = ZoneInfo("Asia/Kolkata")
NEW_YORK = ZoneInfo("America/New_York")
ENROLMENT_COLUMNS = ("batch_id", "user_id", "enrolled_date", "completed_date", "progress", "certificate_issued")
IST = timezone(timedelta(hours=5, minutes=30))
EST = timezone(timedelta(hours=-5))
# (user, enrolment day, completion instant, how text spells that instant)
ENROLMENTS = [
    # 01:30 on the 27th in India, 15:00 on the 26th in New York
    ("u1", date(2026, 11, 26), datetime(2026, 11, 26, 20, 0, tzinfo=UTC), "2026-11-26T20:00:00Z"),
    ("u2", date(2026, 11, 20), datetime(2026, 11, 26, 18, 29, 59, tzinfo=UTC), "2026-11-26 23:59:59+05:30"),
    # 00:30 on 1 July in New York's summer time; a fixed -05:00 would say 30 June
    ("u3", date(2026, 6, 30), datetime(2026, 7, 1, 4, 30, tzinfo=UTC), "2026-06-30T23:30:00.250-05:00"),
    ("u4", date(2026, 1, 5), datetime(2026, 2, 1, 3, 0, tzinfo=UTC), "2026-02-01T03:00z"),
    ("u5", date(2026, 1, 5), None, None),
]


def as_text() -> list[tuple]:
    return [(BATCH, user, day.isoformat(), text, 50, 0) for user, day, _, text in ENROLMENTS]


def as_values() -> list[tuple]:
    return [(BATCH, user, day, instant, 50, 0) for user, day, instant, _ in ENROLMENTS]


async def fill(source: Source, enrolments: list[tuple]) -> None:
    await source.insert("courses", ("course_id", "name"), [(COURSE, "Dates")])
    await source.insert("batches", ("batch_id", "course_id", "name", "status", "start_date", "end_date", "created_by"),
                        [(BATCH, COURSE, "Batch", 1, "2026-01-01", None, "mentor")])  # fmt: skip
    await source.insert("enrolments", ENROLMENT_COLUMNS, enrolments)


async def rows_of(source: Source, zone: ZoneInfo) -> bytes:
    out = io.BytesIO()
    await source.write_csv(BATCH, [], "", LAST_KEY, out, zone)
    return out.getvalue()


def dates_by_user(content: bytes) -> dict[str, tuple[str, str]]:
    return {row[4]: (row[16], row[17]) for row in csv.reader(io.StringIO(content.decode(), newline=""))}


@pytest.fixture
async def sqlite_source(tmp_path: Path) -> AsyncIterator[Source]:
    source = SqliteSource(f"sqlite:///{tmp_path / 'dates.db'}")
    yield source
    await source.close()


@pytest.fixture
async def pg_source(pg_url: str) -> AsyncIterator[PostgresSource]:
    source = PostgresSource(pg_url)
    yield source
    await source.close()


async def typed_tables(pg_url: str) -> None:
    """The enrolment dates as a real schema has them: a `date`, and a `timestamptz`."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            TABLES.replace("enrolled_date TEXT NOT NULL", "enrolled_date date NOT NULL").replace(
                "completed_date TEXT", "completed_date timestamptz"
            )
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("zone", [INDIA, NEW_YORK], ids=str)
async def test_date_and_timestamptz_columns_give_the_same_bytes_as_iso_text(
    zone: ZoneInfo, pg_url: str, pg_source: PostgresSource, sqlite_source: Source
) -> None:
    await typed_tables(pg_url)
    await fill(pg_source, as_values())
    await fill(sqlite_source, as_text())
    from_postgres = await rows_of(pg_source, zone)
    assert from_postgres == await rows_of(sqlite_source, zone)
    days = dates_by_user(from_postgres)
    for user, enrolled, completed, _ in ENROLMENTS:
        shown = f"{completed.astimezone(zone):%d/%m/%Y}" if completed else ""
        assert days[user] == (f"{enrolled:%d/%m/%Y}", shown)
    if zone is INDIA:
        assert days["u1"][1] == "27/11/2026"  # 20:00 UTC is already the next day in India
    else:
        assert days["u3"][1] == "01/07/2026"  # summer time counted


async def test_iso_text_in_postgres_gives_the_same_bytes_as_in_sqlite(
    pg_source: PostgresSource, sqlite_source: Source
) -> None:
    for source in (pg_source, sqlite_source):
        await fill(source, as_text())
    assert await rows_of(pg_source, INDIA) == await rows_of(sqlite_source, INDIA)


async def test_text_that_is_no_date_is_an_empty_cell_and_no_completion_in_both_sources(
    pg_source: PostgresSource, sqlite_source: Source
) -> None:
    odd = ["", "26/11/2026", "not a date", "2461000.5", "now", "2026-11-26T25:00", "2026-13-01", "2026-11-26 10:00"]
    enrolments = [(BATCH, f"odd-{i}", "2026-01-05", text, 40, 0) for i, text in enumerate(odd)]
    for source in (pg_source, sqlite_source):
        await fill(source, enrolments)
    content = await rows_of(pg_source, INDIA)
    assert content == await rows_of(sqlite_source, INDIA)
    rows = {row[4]: row for row in csv.reader(io.StringIO(content.decode(), newline=""))}
    assert [rows[f"odd-{i}"][17] for i in range(len(odd))] == [""] * (len(odd) - 1) + ["26/11/2026"]
    assert [rows[f"odd-{i}"][19] for i in range(len(odd))] == ["40"] * (len(odd) - 1) + ["100"]
    assert await pg_source.dashboard(BATCH) == await sqlite_source.dashboard(BATCH)
    assert (await pg_source.dashboard(BATCH))["completed"] == 1


async def test_a_day_no_calendar_has_is_an_empty_cell_in_both_sources_and_a_warning_naming_the_user(
    pg_source: PostgresSource, sqlite_source: Source, caplog: pytest.LogCaptureFixture
) -> None:
    """One bad row must not fail the batch's report (nor its dashboard) on PostgreSQL, whose cast refuses
    `2026-02-30` where SQLite would read it as it is."""
    impossible = {"bad-feb": "2026-02-30", "bad-instant": "2026-02-29T10:00:00Z", "bad-year": "0000-01-01",
                  "bad-april": "2026-04-31 08:00"}  # fmt: skip
    enrolments = [(BATCH, user, "2026-01-05", text, 40, 0) for user, text in impossible.items()]
    enrolments.append((BATCH, "leap-day", "2026-01-05", "2024-02-29", 40, 0))
    for source in (pg_source, sqlite_source):
        await fill(source, enrolments)
    caplog.clear()
    content = await rows_of(pg_source, INDIA)
    from_postgres = caplog.text
    caplog.clear()
    assert content == await rows_of(sqlite_source, INDIA)
    from_sqlite = caplog.text
    days = dates_by_user(content)
    assert {user: days[user][1] for user in impossible} == dict.fromkeys(impossible, "")
    assert days["leap-day"][1] == "29/02/2024"
    assert (await pg_source.dashboard(BATCH))["completed"] == 1
    for user in impossible:
        assert f"user {user}:" in from_postgres and f"user {user}:" in from_sqlite
    assert "leap-day" not in from_postgres + from_sqlite


def next_evening_utc(now: datetime) -> datetime:
    """The next 20:00 UTC: 01:30 the next day in India."""
    evening = now.replace(hour=20, minute=0, second=0, microsecond=0)
    return evening if evening > now else evening + timedelta(days=1)


async def test_a_click_at_20_00_utc_is_named_by_the_next_day_in_india(
    env: dict[str, str], batch: dict, redis: object, token: Callable[..., str]
) -> None:
    """`hub serve` runs under faketime at 20:00 UTC, on a machine whose own zone is UTC."""
    now = datetime.now(UTC)
    click = next_evening_utc(now)
    ahead = int((click - now).total_seconds())
    # libfaketime preloaded into the hub itself: the `faketime` command would leave it running when killed.
    clock = {"LD_PRELOAD": libfaketime(), "FAKETIME": f"+{ahead}s", "TZ": "UTC"}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "serve", env={**os.environ, **env, **clock}, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {token(ttl=ahead + 3600)}"}
    try:
        async with aiohttp.ClientSession(env["PUBLIC_URL"], headers=headers) as http:
            async with asyncio.timeout(20):
                while True:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get("/readyz") as ready:
                            if ready.status == 200:
                                break
                    await asyncio.sleep(0.1)
            async with http.post("/v1/reports/course-progress", json={"batchId": batch["batchId"]}) as response:
                assert response.status == 202
                job_id = (await response.json())["result"]["jobId"]
            async with http.get(f"/v1/reports/jobs/{job_id}") as response:
                job = (await response.json())["result"]
    finally:
        server.terminate()
        await server.wait()
    next_day = click + timedelta(days=1)
    assert job["fileName"] == f"{batch['batchId']}_progress_{next_day:%Y%m%d}.csv"
