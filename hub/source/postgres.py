"""PostgreSQL report source: what a deployment points `SOURCE_URL=postgresql://...` at.

It runs the same SQL as SQLite (`schema.py`), so the two give the same CSV bytes from the same data.
The one thing PostgreSQL does differently is order text: by the database's locale, where SQLite
compares bytes. Every ORDER BY and user-id range here asks for the "C" collation (byte order), and the
tables this source creates use it for their text columns, so the primary key also serves the report's
order and its ranges without a sort.

A report streams from a server-side cursor: PostgreSQL keeps the result, a part writer holds at most
two chunks of it, whatever the size of the batch.

With a `timeout`, every statement (each cursor fetch too) and every wait for a connection is bounded,
on the server (`statement_timeout`) and in the client (asyncpg's command timeout, which also covers a
server that stopped answering altogether). Failures that pass (a restart, a dropped connection, a
timeout) raise `SourceUnavailable`, which the report job tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
from asyncpg.cursor import Cursor

from hub.source.model import Batch, SourceError, SourceUnavailable, batch_row, summarize
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

BYTES = 'COLLATE "C"'
TABLES_IN_BYTE_ORDER = re.sub(r"\bTEXT\b", f"TEXT {BYTES}", TABLES)
# ISO text as SQLite reads it: a day, perhaps a time, perhaps an offset (`Z` or `+05:30`). Fields out of
# range are kept out here, since a cast that fails would fail the whole report.
ISO_DATE = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)?)?$"
)
DATE_TYPES = "('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype)"


def day(expr: str, zone: ZoneInfo | None) -> str:
    """A date column may be `date`, `timestamp`, `timestamptz` or text. Each becomes a `timestamptz`
    (a `date`, a `timestamp` and text without an offset at that time of their day in the session's
    zone), which `to_char` shows in the session's zone: the report sets it to `zone` (`write_csv`)."""
    text = f"{expr}::text"
    # Nested, since PostgreSQL evaluates the WHENs of one CASE in order but the terms of an AND in any.
    date = (
        f"CASE WHEN pg_typeof({expr}) IN {DATE_TYPES} THEN {expr}::timestamptz WHEN {text} ~ '{ISO_DATE}' THEN "
        f"CASE WHEN {real_day(text)} THEN {expr}::timestamptz END END"
    )
    return f"to_char({date}, 'DD/MM/YYYY')"


SQL = Queries(param="${}", char="chr", day=day, collate=f" {BYTES}")
PRIMARY_KEY_SQL = (
    "SELECT a.attname FROM pg_index i "
    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
    "WHERE i.indrelid = $1::regclass AND i.indisprimary"
)
# Two processes seeding a new database at once must not both create the tables.
SCHEMA_LOCK = 0x687562
CONNECT_TIMEOUT = 10
MIN_CONNECTIONS, MAX_CONNECTIONS = 1, 5
# The server or the network failed; anything else (a full disk under the CSV file, a bug) is not the
# source's fault and keeps its own type.
DATABASE_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError)
CONNECT_FAILURES = (*DATABASE_FAILURES, OSError, TimeoutError)
# Of those, the ones that pass: the server shutting down, restarting or crashed, the connection lost,
# too many clients, a statement cancelled by its timeout, a serialization failure or deadlock.
PASSING_FAILURES = (
    asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError, asyncpg.TooManyConnectionsError, asyncpg.QueryCanceledError,
    asyncpg.TransactionRollbackError, OSError, TimeoutError,
)  # fmt: skip


def failure(message: str, cause: BaseException, lost: bool = False) -> SourceError:
    """`lost`: the connection is gone, whatever asyncpg called the error (a transaction that cannot end
    on a closed connection says so with an InterfaceError)."""
    kind = SourceUnavailable if lost or isinstance(cause, PASSING_FAILURES) else SourceError
    return kind(f"{message}: {str(cause) or type(cause).__name__}")


def redacted(url: str) -> str:
    """The DSN as messages and logs may show it: no password, no query string (which may hold one)."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    netloc = f"{user}{':***' if ':' in userinfo else ''}{at}{host}"
    return urlunsplit(parts._replace(netloc=netloc, query=""))


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _chunks_ahead(cursor: Cursor, size: int) -> AsyncIterator[list[asyncpg.Record]]:
    """The cursor's rows, `size` at a time, each fetch asked for before the previous chunk is handed out."""
    ahead = asyncio.ensure_future(cursor.fetch(size))
    try:
        while rows := await ahead:
            ahead = asyncio.ensure_future(cursor.fetch(size))
            await asyncio.sleep(0)  # lets the fetch send its request before the caller's synchronous work
            yield rows
    finally:
        # A caller that stops early (closing this generator) leaves one fetch in flight: let it land
        # before the transaction ends, and take its outcome so that asyncio does not report it as lost.
        await asyncio.wait([ahead])
        if not ahead.cancelled():
            ahead.exception()


def _lost(conn: asyncpg.Connection) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # the pool took back a connection that closed under its user
        return True


def upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    names = ", ".join(map(quoted, columns))
    keys = ", ".join(map(quoted, key))
    changes = ", ".join(f"{quoted(c)} = EXCLUDED.{quoted(c)}" for c in columns if c not in key)
    return (
        f"INSERT INTO {quoted(table)} ({names}) "
        f"SELECT DISTINCT ON ({keys}) {names} FROM staging ORDER BY {keys}, seq DESC "
        f"ON CONFLICT ({keys}) DO " + (f"UPDATE SET {changes}" if changes else "NOTHING")
    )


class PostgresSource:
    def __init__(self, url: str, timeout: float | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.where = redacted(url)
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._tables_ready = False
        self._keys: dict[str, tuple[str, ...]] = {}

    async def _open(self) -> asyncpg.Pool:
        """The pool is made on first use, in the event loop that uses it (the app's, the worker's)."""
        async with self._opening:
            if self._pool is None:
                settings = {"application_name": "course-report-hub"}
                if self.timeout:
                    settings["statement_timeout"] = str(int(self.timeout * 1000))
                try:
                    self._pool = await asyncpg.create_pool(
                        self.url, min_size=MIN_CONNECTIONS, max_size=MAX_CONNECTIONS,
                        timeout=min(CONNECT_TIMEOUT, self.timeout or CONNECT_TIMEOUT),
                        command_timeout=self.timeout, server_settings=settings,
                    )  # fmt: skip
                except Exception as exc:
                    # A malformed DSN raises ValueError or OverflowError, the network OSError, the
                    # server its own errors: to the operator every one means "SOURCE_URL is wrong".
                    raise failure(f"cannot reach the PostgreSQL source {self.where}", exc) from exc
            return self._pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool or await self._open()
        try:
            # The acquire's timeout also bounds the reset of the connection when it is released.
            conn = await pool.acquire(timeout=self.timeout)
        except CONNECT_FAILURES as exc:
            raise failure(f"cannot reach the PostgreSQL source {self.where}", exc) from exc
        try:
            yield conn
        except (*DATABASE_FAILURES, TimeoutError) as exc:
            lost = _lost(conn)
            if not lost and isinstance(exc, PASSING_FAILURES):
                # Resetting a connection whose server stopped answering would wait for an answer too.
                conn.terminate()
            raise failure(f"the PostgreSQL source {self.where} failed", exc, lost) from exc
        finally:
            await pool.release(conn, timeout=self.timeout)

    async def check(self) -> None:
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1 FROM batches LIMIT 1")

    async def batch(self, batch_id: str) -> Batch | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(SQL.batch, batch_id)
            if row is None:
                return None
            mentors = await conn.fetch(SQL.mentors, batch_id)
        return Batch(*row, mentors=frozenset(m for (m,) in mentors))

    async def mentor_batches(self, user_id: str) -> list[dict[str, Any]]:
        async with self._connection() as conn:
            return [batch_row(r) for r in await conn.fetch(SQL.mentor_batches, user_id)]

    async def dashboard(self, batch_id: str) -> dict[str, Any]:
        async with self._connection() as conn:
            totals = await conn.fetchrow(SQL.dashboard, batch_id)
            buckets = await conn.fetch(SQL.histogram, batch_id)
        return summarize(totals, buckets)

    async def assessments(self, course_id: str) -> list[str]:
        async with self._connection() as conn:
            return [c for (c,) in await conn.fetch(SQL.assessments, course_id)]

    async def participant_count(self, batch_id: str) -> int:
        async with self._connection() as conn:
            return await conn.fetchval(SQL.participants, batch_id)

    async def user_name(self, user_id: str) -> str | None:
        async with self._connection() as conn:
            return await conn.fetchval(SQL.user_name, user_id)

    async def part_bounds(self, batch_id: str, parts: int) -> list[str]:
        """The count and the bounds come from one snapshot: an enrolment deleted between the two reads must
        not leave an offset past the end, with no user id to bound a part."""
        async with self._connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            total = await conn.fetchval(SQL.participants, batch_id)
            return [await conn.fetchval(SQL.part_bound, batch_id, offset) for offset in part_offsets(total, parts)]

    async def write_csv(
        self, batch_id: str, assessments: Sequence[str], lower: str, upper: str, out: BinaryIO, zone: ZoneInfo
    ) -> int:
        """Streams from a server-side cursor, a chunk at a time, so memory stays flat whatever the size
        of the batch; PostgreSQL makes the next chunk while Python formats this one."""
        sql = SQL.report(len(assessments), zone)
        rows = 0
        async with self._connection() as conn, conn.transaction(readonly=True):
            await conn.execute("SELECT set_config('TimeZone', $1, true)", zone.key)
            cursor = await conn.cursor(sql, batch_id, *assessments, lower, upper)
            async with contextlib.aclosing(_chunks_ahead(cursor, CHUNK_ROWS)) as chunks:
                with csv_text(out) as text:
                    writer = csv_writer(text)
                    async for chunk in chunks:
                        writer.writerows(chunk)
                        text.flush()
                        rows += len(chunk)
            warn_undated(batch_id, await conn.fetch(SQL.undated, batch_id, lower, upper))
        return rows

    async def insert(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> int:
        """Adds or replaces rows by primary key, as SQLite's INSERT OR REPLACE does.

        COPY into a temporary table, then one INSERT .. ON CONFLICT from it: a million seeded rows take
        seconds, where a row-by-row upsert takes minutes. When a key repeats, the last row wins.
        """
        async with self._connection() as conn, conn.transaction():
            if not self._tables_ready:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await conn.execute(TABLES_IN_BYTE_ORDER)
            key = await self._primary_key(conn, table)
            copied = await self._stage(conn, table, columns, rows)
            await conn.execute(upsert_sql(table, columns, key))
        self._tables_ready = True
        return copied

    @staticmethod
    async def _stage(conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> int:
        """COPYs the rows, numbered, into a temporary `staging` table shaped like `columns` of `table`."""
        names = ", ".join(map(quoted, columns))
        await conn.execute(
            f"CREATE TEMP TABLE staging ON COMMIT DROP AS "
            f"SELECT {names}, 0::bigint AS seq FROM {quoted(table)} WITH NO DATA"
        )
        status = await conn.copy_records_to_table(
            "staging", records=((*row, n) for n, row in enumerate(rows)), columns=[*columns, "seq"]
        )
        return int(status.split()[-1])

    async def _primary_key(self, conn: asyncpg.Connection, table: str) -> tuple[str, ...]:
        """Read from the catalog, so tables that someone else created are upserted by their own key."""
        if table not in self._keys:
            key = tuple(r["attname"] for r in await conn.fetch(PRIMARY_KEY_SQL, quoted(table)))
            if not key:
                raise SourceError(f"the table {table} of {self.where} has no primary key to replace rows by")
            self._keys[table] = key
        return self._keys[table]

    async def analyze(self) -> None:
        async with self._connection() as conn:
            await conn.execute("ANALYZE")

    async def close(self) -> None:
        """A graceful close waits for the server to answer; one that stopped answering is cut off."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.timeout)
            except TimeoutError:
                pool.terminate()
