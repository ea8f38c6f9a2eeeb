"""A report made in parallel parts: each part is a range of the batch's participants, written as CSV by
a process of its own into a spool file, and streamed out in order while later parts are still being made.

One Python process turns about 80,000 rows a second into CSV (fetching tuples and `csv.writer` both
hold the GIL), so a million rows take 12 s on one core. Split across the machine's cores they take a
fraction of that, the upload starts with the first bytes of part one, and each process's memory stays
flat: rows go to disk, never to a list.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hub import metrics
from hub.config import Settings
from hub.source import Source, open_source
from hub.source.schema import LAST_KEY
from jobs.spool import Spool, remove_abandoned

log = logging.getLogger(__name__)
MIN_ROWS_PER_PART = 25_000
READ_SIZE = 1 << 20
POLL = 0.005
RESTART_PAUSE = 1.0


@dataclass(frozen=True)
class Part:
    """One range of a report's rows, `lower <= user_id < upper`, and the spool file it is written to; sent
    to a part-writer process as it is."""

    source_url: str
    source_timeout: float
    zone: ZoneInfo
    batch_id: str
    assessments: list[str]
    lower: str
    upper: str
    path: str


def write_part(part: Part) -> int:
    """Runs in a part writer: the part's rows into its spool file, days in its zone; returns the rows
    written."""
    return asyncio.run(_write_part(part))


async def _write_part(part: Part) -> int:
    source = open_source(part.source_url, part.source_timeout)
    try:
        with open(part.path, "wb") as out:  # noqa: ASYNC230 - this process does nothing else meanwhile
            return await source.write_csv(part.batch_id, part.assessments, part.lower, part.upper, out, part.zone)
    finally:
        await source.close()


@dataclass
class Tally:
    total: int
    rows: int = 0


class PartWriterLost(Exception):
    """A part writer died while it worked (the OOM killer, a crash in a driver)."""


def _follow_parent(parent: int) -> None:
    """A part writer outlives a worker killed with SIGKILL; this ends it instead of leaving an orphan."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()


def _serve(conn: Connection, parent: int) -> None:
    """A part writer's life: say it is ready, then run one call at a time and send back its outcome."""
    _follow_parent(parent)
    conn.send((True, os.getpid()))
    while True:
        try:
            call, args = conn.recv()
        except EOFError:
            return
        try:
            reply = (True, call(*args))
        except Exception as exc:
            reply = (False, exc)
        try:
            conn.send(reply)
        except Exception:  # an error that does not pickle still tells what it was
            conn.send((False, RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}")))


class Writer:
    """One part-writing process and its pipe; unlike a process pool's, it can be killed on its own."""

    def __init__(self, context: SpawnContext) -> None:
        self._conn, theirs = context.Pipe()
        # spawn, not fork: the worker runs threads and an event loop that a forked child must not inherit.
        self.process = context.Process(target=_serve, args=(theirs, os.getpid()), name="part-writer", daemon=True)
        self.process.start()
        theirs.close()

    async def call(self, function: Callable[..., Any] | None = None, *args: Any) -> tuple[bool, Any]:
        """Runs `function(*args)` in the process (None: waits for it to be ready); returns (ok, value)."""
        try:
            if function is not None:
                self._conn.send((function, args))
            await self._readable()
            return self._conn.recv()
        except (EOFError, OSError) as exc:
            raise PartWriterLost(f"part writer {self.process.pid} ended (exit code {self.process.exitcode})") from exc

    def idle_and_well(self) -> bool:
        """An idle writer has nothing to say: a readable pipe means it died (its end closed), even when
        someone else reaped the process and `is_alive()` can no longer tell."""
        return self.process.is_alive() and not self._conn.poll()

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        handle = self._conn.fileno()
        loop.add_reader(handle, lambda: readable.done() or readable.set_result(None))
        try:
            await readable
        finally:
            loop.remove_reader(handle)

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self._conn.close()


class Lane:
    """Part writers kept for one size of report: a report only ever waits for the writers of its lane.

    A writer is taken for one part and given back when the part is written or failed. One that the
    report stopped waiting for (its deadline passed, another part failed) may still be stuck on a server
    that stopped answering, so it is killed and a fresh one started in its place: the lane is whole
    again for the next report instead of busy with work nobody wants.
    """

    def __init__(self, name: str, size: int, context: SpawnContext) -> None:
        self.name = name
        self.size = size
        self._context = context
        self._idle: asyncio.Queue[Writer] = asyncio.Queue()
        self._writers: set[Writer] = set()
        self._starting: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await asyncio.gather(*(self._add() for _ in range(self.size)))

    def parts_for(self, total: int) -> int:
        return max(1, min(self.size, total // MIN_ROWS_PER_PART))

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        writer = await self._take()
        try:
            ok, value = await writer.call(function, *args)
        except BaseException:  # cancelled while the writer works, or the writer died
            self._replace(writer)
            raise
        self._idle.put_nowait(writer)
        if not ok:
            raise value
        return value

    async def _take(self) -> Writer:
        while True:
            writer = await self._idle.get()
            if writer.idle_and_well():
                return writer
            log.warning("%s part writer %s had ended (exit code %s); starting another", self.name,
                        writer.process.pid, writer.process.exitcode)  # fmt: skip
            self._replace(writer)

    def _replace(self, writer: Writer) -> None:
        metrics.PART_WRITER_RESTARTS.labels(self.name).inc()
        writer.kill()
        self._writers.discard(writer)
        task = asyncio.create_task(self._add())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _add(self) -> None:
        """Starts a writer and waits until it is ready; a writer that cannot start is tried again, so a
        lane never shrinks for good."""
        while True:
            writer = Writer(self._context)
            self._writers.add(writer)
            try:
                await writer.call()
            except PartWriterLost:
                log.exception("a %s part writer did not start", self.name)
                self._writers.discard(writer)
                writer.kill()
                await asyncio.sleep(RESTART_PAUSE)
                continue
            self._idle.put_nowait(writer)
            return

    def close(self) -> None:
        for task in self._starting:
            task.cancel()
        for writer in self._writers:
            writer.kill()
        self._writers.clear()


class PartWriters:
    """The worker's part-writing processes, started once so no report pays for a process start, in two
    lanes: `REPORT_PARTS` writers for big batches and one kept for batches under `SMALL_BATCH`, which so
    never waits behind a big report's parts."""

    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("spawn")
        self.settings = settings
        self.big = Lane("big", settings.report_parts, context)
        self.small = Lane("small", 1, context)
        self._spool: Spool | None = None

    async def start(self) -> None:
        remove_abandoned()
        self._spool = Spool()
        await asyncio.gather(self.big.start(), self.small.start())

    def close(self) -> None:
        self.big.close()
        self.small.close()
        if self._spool is not None:
            self._spool.close()

    def lane_for(self, total: int) -> Lane:
        return self.small if total < self.settings.small_batch else self.big

    @contextlib.asynccontextmanager
    async def parts(
        self, source: Source, source_url: str, zone: ZoneInfo, batch_id: str, assessments: list[str], tally: Tally
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """The CSV rows of the whole batch in report order, days in `zone`; `tally.rows` counts the rows
        written.

        A context, not a bare generator: the upload that reads the rows drops them without closing
        them when the report times out, so the parts still being written are cancelled (and their
        writers replaced) when the block ends, not when the garbage collector finds the generator.
        """
        assert self._spool is not None, "start() first"
        lane = self.lane_for(tally.total)
        bounds = ["", *(await source.part_bounds(batch_id, lane.parts_for(tally.total))), LAST_KEY]
        spool = self._spool.report_folder()
        timeout = self.settings.source_timeout
        parts = [
            asyncio.ensure_future(
                lane.run(
                    write_part,
                    Part(source_url, timeout, zone, batch_id, assessments, lower, upper, str(spool / f"{i}.csv")),
                )
            )
            for i, (lower, upper) in enumerate(itertools.pairwise(bounds))
        ]
        try:
            yield _in_order(spool, parts, tally)
        finally:
            for part in parts:
                part.cancel()
            await asyncio.gather(*parts, return_exceptions=True)
            shutil.rmtree(spool, ignore_errors=True)


async def _in_order(spool: Path, parts: list[asyncio.Future[int]], tally: Tally) -> AsyncIterator[bytes]:
    for i, part in enumerate(parts):
        async for chunk in _tail(spool / f"{i}.csv", part):
            yield chunk
        tally.rows += await part


async def _tail(path: Path, writer: asyncio.Future[int]) -> AsyncIterator[bytes]:
    """Follows a spool file as its writer fills it, until the writer is done and the file is read.

    A writer that failed is not reported here: the caller awaits it and gets its error.
    """
    while not path.exists():  # noqa: ASYNC240 - a stat of a local spool file, no slower than a syscall
        if writer.done():
            return
        await asyncio.sleep(POLL)
    with path.open("rb") as spooled:
        while True:
            finished = writer.done()
            data = spooled.read(READ_SIZE)
            if data:
                yield data
            elif finished:
                return
            else:
                await asyncio.sleep(POLL)
