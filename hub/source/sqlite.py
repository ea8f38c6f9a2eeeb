"""SQLite report source: the embedded default, one file on disk.

Each call opens its own connection in a worker thread: sqlite3 releases the GIL while it steps, so the
event loop keeps serving sockets while a report reads a million rows. Reads open the file read-only,
so a wrong path is an error rather than a new empty database.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from zoneinfo import ZoneInfo

from hub.source.model import Batch, SourceError, batch_row, summarize
from hub.source.schema import (
    CHUNK_ROWS,
    TABLES,
    Queries,
    csv_text,
    csv_writer,
    part_offsets,
    real_day,
    warn_undated,
)

T = TypeVar("T")
# Clustered on their keys: a batch's enrolments, and each participant's profile, are one B-tree walk
# away instead of an index lookup plus a table lookup per row (twice as fast for a million rows).
SQLITE_TABLES = TABLES.replace("\n);", "\n) WITHOUT ROWID;")
# The years whose changes of UTC offset the report knows; an instant before them gets the first offset.
ZONE_YEARS = (1970, 2100)
ISO_DATE = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"
WITH_OFFSET = "{0} GLOB '*[+-][0-9][0-9]:[0-9][0-9]' OR {0} GLOB '*[Zz]'"


def _offset(zone: ZoneInfo, epoch: int) -> int:
    return int(datetime.fromtimestamp(epoch, zone).utcoffset().total_seconds())  # type: ignore[union-attr]


@functools.cache
def offset_changes(zone: ZoneInfo) -> tuple[int, tuple[tuple[str, int], ...]]:
    """The zone's UTC offset in seconds at the start of ZONE_YEARS, and each change of it within them
    (the UTC instant as SQLite writes it, the offset from then on). SQLite knows no time zones; these
    make its day the one PostgreSQL's time zone database gives."""
    epoch, end = (int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) for year in ZONE_YEARS)
    week = 7 * 24 * 3600
    first = current = _offset(zone, epoch)
    changes = []
    while epoch < end:
        if _offset(zone, epoch + week) != current:
            low, high = epoch, epoch + week  # the offset changes after `low`, by `high`
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if _offset(zone, middle) == current else (low, middle)
            current = _offset(zone, high)
            changes.append((f"{datetime.fromtimestamp(high, UTC):%Y-%m-%d %H:%M:%S}", current))
        epoch += week
    return first, tuple(changes)


def _shift(utc: str, offset: int, changes: Sequence[tuple[str, int]]) -> str:
    """The modifier that moves the UTC time `utc` into the zone: a binary search over the changes, so a
    zone with summer time costs a few comparisons a cell rather than hundreds."""
    if not changes:
        return f"'{offset:+d} seconds'"
    middle = len(changes) // 2
    at, after = changes[middle]
    return (
        f"CASE WHEN {utc} < '{at}' THEN {_shift(utc, offset, changes[:middle])} "
        f"ELSE {_shift(utc, after, changes[middle + 1 :])} END"
    )


def day(expr: str, zone: ZoneInfo | None) -> str:
    """SQLite reads ISO text itself (an offset turns it into UTC); the zone's offset at that instant
    then gives the day. The leading GLOB keeps out what SQLite would also read as a time: 'now', a
    Julian day number."""
    on_its_day = f"strftime('%d/%m/%Y', {expr})"
    if zone is not None:
        instant_day = f"strftime('%d/%m/%Y', {expr}, {_shift(f'datetime({expr})', *offset_changes(zone))})"
        on_its_day = f"CASE WHEN {WITH_OFFSET.format(expr)} THEN {instant_day} ELSE {on_its_day} END"
    return f"CASE WHEN {expr} GLOB '{ISO_DATE}' AND {real_day(expr)} THEN {on_its_day} END"


SQL = Queries(param="?{}", char="char", day=day)
# WAL lets reports read while a seed writes; a large cache keeps random-key inserts off the disk.
WRITER_PRAGMAS = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-131072;\n"


def sqlite_path(url: str) -> Path:
    """`sqlite:///./var/hub.db` is relative to the working directory, `sqlite:////abs/hub.db` absolute."""
    return Path(url.removeprefix("sqlite://").removeprefix("/") if url.startswith("sqlite:///") else url[9:])


class SqliteSource:
    def __init__(self, url: str) -> None:
        self.path = sqlite_path(url)
        # Writes (seeding) share one connection, so its page cache stays warm across the bulk inserts.
        self._writer: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True)
        except (sqlite3.Error, OSError) as exc:
            raise SourceError(f"cannot open the SQLite source {self.path}: {exc}") from exc

    def _writing(self) -> sqlite3.Connection:
        if self._writer is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, check_same_thread=False)
                conn.executescript(WRITER_PRAGMAS + SQLITE_TABLES)
            except (sqlite3.Error, OSError) as exc:
                raise SourceError(f"cannot open the SQLite source {self.path}: {exc}") from exc
            self._writer = conn
        return self._writer

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            conn = self._connect()
            try:
                return work(conn)
            except sqlite3.Error as exc:
                raise SourceError(f"the SQLite source failed: {exc}") from exc
            finally:
                conn.close()

        return await asyncio.to_thread(call)

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            conn = self._writing()
            try:
                with conn:
                    return work(conn)
            except sqlite3.Error as exc:
                raise SourceError(f"the SQLite source failed: {exc}") from exc

        async with self._write_lock:
            return await asyncio.to_thread(call)

    async def check(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT count(*) FROM batches").fetchone())

    async def batch(self, batch_id: str) -> Batch | None:
        def read(conn: sqlite3.Connection) -> Batch | None:
            row = conn.execute(SQL.batch, (batch_id,)).fetchone()
            if row is None:
                return None
            mentors = conn.execute(SQL.mentors, (batch_id,))
            return Batch(*row, mentors=frozenset(m for (m,) in mentors))

        return await self._run(read)

    async def mentor_batches(self, user_id: str) -> list[dict[str, Any]]:
        return await self._run(lambda conn: [batch_row(r) for r in conn.execute(SQL.mentor_batches, (user_id,))])

    async def dashboard(self, batch_id: str) -> dict[str, Any]:
        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            totals = conn.execute(SQL.dashboard, (batch_id,)).fetchone()
            return summarize(totals, conn.execute(SQL.histogram, (batch_id,)).fetchall())

        return await self._run(read)

    async def assessments(self, course_id: str) -> list[str]:
        return await self._run(lambda conn: [c for (c,) in conn.execute(SQL.assessments, (course_id,))])

    async def participant_count(self, batch_id: str) -> int:
        return await self._run(lambda conn: conn.execute(SQL.participants, (batch_id,)).fetchone()[0])

    async def user_name(self, user_id: str) -> str | None:
        row = await self._run(lambda conn: conn.execute(SQL.user_name, (user_id,)).fetchone())
        return row[0] if row else None

    async def part_bounds(self, batch_id: str, parts: int) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            total = conn.execute(SQL.participants, (batch_id,)).fetchone()[0]
            return [
                conn.execute(SQL.part_bound, (batch_id, offset)).fetchone()[0] for offset in part_offsets(total, parts)
            ]

        return await self._run(read)

    async def write_csv(
        self, batch_id: str, assessments: Sequence[str], lower: str, upper: str, out: BinaryIO, zone: ZoneInfo
    ) -> int:
        """Blocks its event loop on purpose: it only runs in a part-writer process that has nothing
        else to do, where a plain loop is a fifth faster than handing rows over from a thread."""
        conn = self._connect()
        try:
            cursor = conn.execute(SQL.report(len(assessments), zone), (batch_id, *assessments, lower, upper))
            with csv_text(out) as text:
                writer = csv_writer(text)
                rows = 0
                while chunk := cursor.fetchmany(CHUNK_ROWS):
                    writer.writerows(chunk)
                    text.flush()
                    rows += len(chunk)
            warn_undated(batch_id, conn.execute(SQL.undated, (batch_id, lower, upper)).fetchall())
            return rows
        except sqlite3.Error as exc:
            raise SourceError(f"the SQLite source failed: {exc}") from exc
        finally:
            conn.close()

    async def insert(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> int:
        sql = f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        return await self._write(lambda conn: conn.executemany(sql, rows).rowcount)

    async def analyze(self) -> None:
        await self._write(lambda conn: conn.execute("ANALYZE"))

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
