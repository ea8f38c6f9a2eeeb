"""The PostgreSQL source against a real, throwaway PostgreSQL: the same answers and the same CSV bytes
as SQLite from the same data, rows that stream, and failures that say what is wrong.

In this module the hub and the worker read PostgreSQL (`env` below); `twin` is a SQLite source that
`batch` fills with exactly the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import itertools
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import orjson
import pytest
from arq.worker import Worker
from asyncpg.cursor import Cursor
from redis.asyncio import Redis

from hub.config import ConfigError, Settings
from hub.embedded import free_port
from hub.source import Source, SourceError, postgres
from hub.source.postgres import PostgresSource
from hub.source.schema import LAST_KEY, TABLES, part_offsets
from hub.source.seed import USER_COLUMNS, seed
from hub.source.sqlite import SqliteSource
from jobs import parts
from jobs.worker import startup
from tests import pg_cluster
from tests.helpers import MENTOR, Call, next_event, running_worker
from tests.pg_cluster import with_database

postgres_server = pg_cluster.postgres_server
pg_url = pg_cluster.pg_url

BATCH = "batch-0001"
COURSE = "do_course_0001"
PARTICIPANTS = 120
# Cells a spreadsheet would run, a quote and a line break inside cells, names in Devanagari, user ids
# whose order differs between byte order and a locale, and an enrolment with no user profile.
AWKWARD_USERS = [
    ("Zed-0001", '=HYPERLINK("http://x.example")', "Bihar", "Patna", "+Org", "0001", "@School", "Block 1",
     "\tTabbed", "teacher", "\rReturn", "CBSE"),
    ("alpha-0002", "-Rahul Verma", "Kerala", "Kannur", "Org", "0002", 'GHS "Kannur", 2', "Block\n2",
     "Cluster 2", "teacher", "", "IB"),
    ("ब-0003", "सुनीता शर्मा", "उत्तर प्रदेश", "लखनऊ", "सरकारी", "0003", "@राजकीय विद्यालय", "ब्लॉक", "क्लस्टर",
     "teacher", "Head Teacher", "State Board"),
]  # fmt: skip
AWKWARD_ENROLMENTS = [
    (BATCH, "Zed-0001", "2025-01-05", None, -5, 0),
    (BATCH, "alpha-0002", "2025-01-06", "2025-02-01", 40, 1),
    (BATCH, "ब-0003", "2025-01-07", None, 150, 0),
    (BATCH, "_no-profile-0004", "2025-01-08", None, 55, 0),
]
ROWS = PARTICIPANTS + len(AWKWARD_ENROLMENTS)
INDIA = ZoneInfo("Asia/Kolkata")


@pytest.fixture
def env(env: dict[str, str], pg_url: str) -> dict[str, str]:
    return {**env, "SOURCE_URL": pg_url}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'twin.db'}"


@pytest.fixture
async def twin(sqlite_url: str) -> AsyncIterator[Source]:
    source = SqliteSource(sqlite_url)
    yield source
    await source.close()


async def fill(source: Source) -> dict[str, Any]:
    """The conftest batch, awkward rows in it, and two more batches of MENTOR's that start the same day
    (same rng seed), so that only the batch id, in byte order, decides their order."""
    made = await seed(source, PARTICIPANTS, BATCH, COURSE, MENTOR, rng_seed=7, progress=None)
    await seed(source, 5, "Batch-B", COURSE, MENTOR, rng_seed=7, progress=None)
    await seed(source, 5, "batch-a", COURSE, "creator-0002", rng_seed=7, progress=None)
    await source.insert("batch_mentors", ("batch_id", "user_id"), [("batch-a", MENTOR)])
    await source.insert("users", USER_COLUMNS, AWKWARD_USERS)
    await source.insert("enrolments", ("batch_id", "user_id", "enrolled_date", "completed_date", "progress",
                                       "certificate_issued"), AWKWARD_ENROLMENTS)  # fmt: skip
    first = (await source.assessments(COURSE))[0]
    await source.insert("assessment_scores", ("batch_id", "user_id", "content_id", "score", "attempts"),
                        [(BATCH, "alpha-0002", first, 7, 2)])  # fmt: skip
    return made


@pytest.fixture
async def batch(source: Source, twin: Source) -> dict[str, Any]:
    """The same rows in PostgreSQL (what the hub reads here) and in the SQLite twin."""
    made = await fill(source)
    assert await fill(twin) == made
    return made


async def csv_of(source: Source, lower: str = "", upper: str = LAST_KEY, out: io.BytesIO | None = None) -> bytes:
    """The report rows of BATCH (a range of them), as the part writers make them."""
    out = out or io.BytesIO()
    rows = await source.write_csv(BATCH, await source.assessments(COURSE), lower, upper, out, INDIA)
    assert rows == out.getvalue().count(b"\r\n")  # a line break inside a cell is a bare "\n"
    return out.getvalue()


async def answers(source: Source) -> dict[str, Any]:
    return {
        "mentor": await source.mentor_batches(MENTOR),
        "nobody": await source.mentor_batches("nobody"),
        "dashboard": await source.dashboard(BATCH),
        "unknown dashboard": await source.dashboard("no-such-batch"),
        "batch": await source.batch(BATCH),
        "unknown batch": await source.batch("no-such-batch"),
        "assessments": await source.assessments(COURSE),
        "participants": await source.participant_count(BATCH),
    }


@contextlib.asynccontextmanager
async def worker_on(settings: Settings) -> AsyncIterator[Worker]:
    """conftest's worker, closed for sure: arq's close() runs `shutdown`, which closes the source's pool
    before the test's database is dropped under it (a second close() does nothing)."""
    async with running_worker(settings) as worker:
        yield worker
        # A job that has sent its last event may still be recording its end with arq: stopping the
        # worker then cancels it, and arq's close() would stop at the cancelled job before `shutdown`.
        async with asyncio.timeout(10):
            while any(not task.done() for task in worker.tasks.values()):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    await worker.close()


async def report_file(call: Call, socket_url: Callable[..., Any], http: aiohttp.ClientSession) -> bytes:
    """A mentor's click, the ready notification, and the file behind its link."""
    async with http.ws_connect(await socket_url()) as ws:
        status, body = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        assert status == 202, body
        ready = await next_event(ws, "report.completed")
    async with aiohttp.ClientSession() as anonymous, anonymous.get(ready["downloadUrl"]) as response:
        assert response.status == 200
        return await response.read()


async def test_postgres_and_sqlite_give_byte_identical_csv_end_to_end(
    settings: Settings,
    sqlite_url: str,
    call: Call,
    socket_url,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parts, "MIN_ROWS_PER_PART", 30)  # several parts, in processes of their own
    files = {}
    for name, url in (("postgresql", settings.source_url), ("sqlite", sqlite_url)):
        async with worker_on(settings.with_(source_url=url)):
            files[name] = await report_file(call, socket_url, http)
    assert files["postgresql"] == files["sqlite"]
    text = files["postgresql"].decode("utf-8")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert len(rows) == 1 + ROWS
    by_user = {row[4]: row for row in rows[1:]}
    assert list(by_user) == sorted(by_user)
    assert by_user["Zed-0001"][5] == """'=HYPERLINK("http://x.example")"""
    assert by_user["Zed-0001"][10] == "'@School"
    assert by_user["Zed-0001"][12] == "'\tTabbed"
    assert by_user["Zed-0001"][19] == "0"
    assert by_user["alpha-0002"][5] == "'-Rahul Verma"
    assert by_user["alpha-0002"][17:22] == ["01/02/2025", "Issued", "100", "7", "2"]
    assert by_user["ब-0003"][5] == "सुनीता शर्मा"
    assert by_user["ब-0003"][10] == "'@राजकीय विद्यालय"
    assert by_user["_no-profile-0004"][5:16] == [""] * 11  # no profile, but its User UUID is there


async def test_postgres_and_sqlite_write_the_same_spreadsheet_rows(
    source: Source, twin: Source, batch: dict[str, Any]
) -> None:
    """The XLSX's rows are SpreadsheetML written by the database: the same bytes from both (day numbers
    in the report's zone, escaping, empty cells), one row per line of the CSV."""

    async def rows_of(source: Source) -> bytes:
        chunks = source.report_chunks(BATCH, await source.assessments(COURSE), "", LAST_KEY, INDIA, True)
        return b"".join([row[0] async for chunk in chunks for row in chunk])

    rows = await rows_of(source)
    assert rows == await rows_of(twin)
    assert rows.count(b"<row>") == (await csv_of(source)).count(b"\r\n")


async def test_dashboard_and_mentor_batches_are_the_same_from_both_sources(
    source: Source, twin: Source, batch: dict[str, Any]
) -> None:
    from_postgres = await answers(source)
    assert from_postgres == await answers(twin)
    assert [b["batchId"] for b in from_postgres["mentor"]] == ["Batch-B", "batch-0001", "batch-a"]
    assert from_postgres["dashboard"]["enrolled"] == ROWS
    assert from_postgres["batch"].allows(MENTOR)


async def test_rows_come_in_byte_order_even_from_tables_made_with_the_database_locale(
    pg_url: str, twin: Source
) -> None:
    """Tables someone else created, with the database's (ICU English) collation, not byte order."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(TABLES)
    finally:
        await conn.close()
    source = PostgresSource(pg_url)
    try:
        await fill(source)
        await fill(twin)
        assert await csv_of(source) == await csv_of(twin)
        assert await answers(source) == await answers(twin)
    finally:
        await source.close()


async def test_parts_split_the_batch_at_the_same_user_ids_as_sqlite(
    source: Source, twin: Source, batch: dict[str, Any]
) -> None:
    offsets = part_offsets(await source.participant_count(BATCH), 4)
    bounds = await source.part_bounds(BATCH, offsets)
    assert bounds == await twin.part_bounds(BATCH, offsets)
    pieces = [await csv_of(source, lower, upper) for lower, upper in itertools.pairwise(["", *bounds, LAST_KEY])]
    assert all(pieces)
    assert b"".join(pieces) == await csv_of(source) == await csv_of(twin)


class Spool(io.BytesIO):
    """A part's spool file that notes how many rows PostgreSQL had sent at each write, or fails one."""

    def __init__(self, fetched: list[int], fail: bool = False) -> None:
        super().__init__()
        self.fetched = fetched
        self.fail = fail
        self.seen: list[int] = []

    def write(self, data: Any) -> int:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.seen.append(sum(self.fetched))
        return super().write(data)


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the chunks fetched from PostgreSQL cursors, with 10 rows to a chunk."""
    sizes: list[int] = []
    fetch = Cursor.fetch

    async def counting(self: Cursor, n: int, **kwargs: Any) -> list:
        rows = await fetch(self, n, **kwargs)
        sizes.append(len(rows))
        return rows

    monkeypatch.setattr(Cursor, "fetch", counting)
    monkeypatch.setattr(postgres, "CHUNK_ROWS", 10)
    return sizes


async def test_write_csv_streams_in_chunks_before_the_whole_batch_is_read(
    source: Source, batch: dict[str, Any], fetched: list[int]
) -> None:
    spool = Spool(fetched)
    await csv_of(source, out=spool)
    assert spool.seen[0] <= 20 < ROWS  # the first rows were written with at most two chunks read
    assert len(spool.seen) >= ROWS // 10
    assert fetched == [10] * (ROWS // 10) + [ROWS % 10, 0]


async def test_a_report_that_fails_midway_gives_its_connection_back(
    source: Source, batch: dict[str, Any], fetched: list[int]
) -> None:
    assessments = await source.assessments(COURSE)
    async with asyncio.timeout(5):
        for _ in range(8):
            with pytest.raises(OSError, match="No space left"):  # the disk's fault, not the source's
                await source.write_csv(BATCH, assessments, "", LAST_KEY, Spool(fetched, fail=True), INDIA)
        assert await source.participant_count(BATCH) == ROWS


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("refused", "cannot reach the PostgreSQL source postgresql://postgres:***@127.0.0.1:"),
        ("malformed", "cannot reach the PostgreSQL source postgresql://postgres@127.0.0.1:notaport/hub"),
        ("no database", 'database "no_such_database" does not exist'),
        ("no tables", 'relation "batches" does not exist'),
    ],
)
async def test_a_source_that_cannot_answer_fails_check_with_a_clear_message(
    case: str, expected: str, postgres_server: str, pg_url: str
) -> None:
    url = {
        "refused": f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/hub",
        "malformed": "postgresql://postgres@127.0.0.1:notaport/hub",
        "no database": with_database(postgres_server, "no_such_database"),
        "no tables": pg_url,
    }[case]
    source = PostgresSource(url)
    try:
        with pytest.raises(SourceError, match=re.escape(expected)) as failure:
            await source.check()
    finally:
        await source.close()
    assert "s3cret" not in str(failure.value)


async def test_a_worker_whose_postgres_is_unreachable_stops_at_start_naming_source_url(
    settings: Settings, redis: Redis
) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/hub"
    with pytest.raises(ConfigError, match=r"^SOURCE_URL cannot be read: cannot reach the PostgreSQL source"):
        await startup({"settings": settings.with_(source_url=dead), "redis": redis})


async def test_a_report_whose_postgres_goes_away_fails_with_source_error(
    settings: Settings, postgres_server: str, call: Call, socket_url, http: aiohttp.ClientSession
) -> None:
    name = f"doomed_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        doomed = PostgresSource(with_database(postgres_server, name))
        await seed(doomed, 0, BATCH, COURSE, MENTOR, progress=None)
        await doomed.close()
        async with worker_on(settings.with_(source_url=doomed.url)) as worker:
            async with asyncio.timeout(10):
                while "services" not in worker.ctx:  # noqa: ASYNC110 (arq tells no one it has started)
                    await asyncio.sleep(0.01)
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
            async with http.ws_connect(await socket_url()) as ws:
                status, _ = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
                assert status == 202
                failed = await next_event(ws, "report.failed")
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
    assert failed["reason"] == "SOURCE_ERROR"
    assert failed["message"] == "Download has failed. Please try again after sometime"


async def test_insert_replaces_rows_by_key_as_sqlite_does(pg_url: str, twin: Source) -> None:
    source = PostgresSource(pg_url)
    batch_columns = ("batch_id", "course_id", "name", "status", "start_date", "end_date", "created_by")
    try:
        for each in (source, twin):
            assert await each.insert("courses", ("course_id", "name"), [(COURSE, "first"), (COURSE, "second")]) == 2
            await each.insert("batches", batch_columns, [(BATCH, COURSE, "Batch", 1, None, None, "someone")])
            await each.insert("batches", batch_columns, [(BATCH, COURSE, "Batch", 1, None, None, MENTOR)])
            assert await each.insert("batch_mentors", ("batch_id", "user_id"), [(BATCH, MENTOR)] * 2) == 2
            with pytest.raises(SourceError):
                await each.insert("no_such_table", ("a",), [(1,)])
        found = await source.batch(BATCH)
        assert found == await twin.batch(BATCH)
        assert (found.course_name, found.created_by, found.mentors) == ("second", MENTOR, {MENTOR})
    finally:
        await source.close()


async def hub_seed(url: str, *args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("hub")), "seed", *args,
        env={**os.environ, "SOURCE_URL": url}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    (line,) = out.decode().splitlines()
    return orjson.loads(line)


async def test_hub_seed_fills_a_postgres_source_and_can_seed_the_same_batch_again(pg_url: str) -> None:
    first = await hub_seed(pg_url, "--participants", "50", "--batch-id", "cli-batch")
    assert first["participants"] == 50
    assert first["batchId"] == "cli-batch"
    assert set(first) == {"courseId", "batchId", "mentorId", "participants"}
    again = await hub_seed(pg_url, "--participants", "50", "--batch-id", "cli-batch", "--course-id",
                           first["courseId"])  # fmt: skip
    source = PostgresSource(pg_url)
    try:
        assert await source.participant_count("cli-batch") == 100
        found = await source.batch("cli-batch")
        assert found is not None
        assert found.created_by == again["mentorId"]
        assert found.mentors == {first["mentorId"], again["mentorId"]}
    finally:
        await source.close()
