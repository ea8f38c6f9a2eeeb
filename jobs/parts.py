"""A report made in parallel parts: each part is a range of the batch's participants, written as CSV by
a process of its own into a spool file, and streamed out in order while later parts are still being made.

One Python process turns about 80,000 rows a second into CSV (fetching tuples and `csv.writer` both
hold the GIL), so a million rows take 12 s on one core. Split across the machine's cores they take a
fraction of that, the upload starts with the first bytes of part one, and each process's memory stays
flat: rows go to disk, never to a list.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hub.source import Source, open_source
from hub.source.schema import LAST_KEY

MIN_ROWS_PER_PART = 25_000
READ_SIZE = 1 << 20
POLL = 0.005


def write_part(
    source_url: str, zone: ZoneInfo, batch_id: str, assessments: list[str], lower: str, upper: str, path: str
) -> int:
    """Runs in a child process: one range of rows into one spool file; returns the rows written."""
    return asyncio.run(_write_part(source_url, zone, batch_id, assessments, lower, upper, path))


async def _write_part(
    source_url: str, zone: ZoneInfo, batch_id: str, assessments: list[str], lower: str, upper: str, path: str
) -> int:
    source = open_source(source_url)
    try:
        with open(path, "wb") as out:  # noqa: ASYNC230 - this process does nothing else meanwhile
            return await source.write_csv(batch_id, assessments, lower, upper, out, zone)
    finally:
        await source.close()


@dataclass
class Tally:
    total: int
    rows: int = 0


def _ready() -> int:
    return os.getpid()


def _follow_parent(parent: int) -> None:
    """A part writer outlives a worker killed with SIGKILL; this ends it instead of leaving an orphan."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()


class PartWriters:
    """The worker's pool of part-writing processes, started once so no report pays for a process start."""

    def __init__(self, processes: int) -> None:
        self.size = processes
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the worker runs threads and an event loop that a forked child must not inherit.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            max_workers=self.size, mp_context=context, initializer=_follow_parent, initargs=(os.getpid(),)
        )

    def _submit(self, *call: Any) -> asyncio.Future[int]:
        """A part writer that died (the OOM killer, a crash in a driver) breaks the whole pool; the next
        report gets a new one instead of the worker failing every report until it restarts."""
        loop = asyncio.get_running_loop()
        try:
            return loop.run_in_executor(self._pool, *call)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return loop.run_in_executor(self._pool, *call)

    async def start(self) -> None:
        await asyncio.gather(*(self._submit(_ready) for _ in range(self.size)))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def parts_for(self, total: int) -> int:
        return max(1, min(self.size, total // MIN_ROWS_PER_PART))

    async def stream(
        self, source: Source, source_url: str, zone: ZoneInfo, batch_id: str, assessments: list[str], tally: Tally
    ) -> AsyncIterator[bytes]:
        """The CSV rows of the whole batch in report order, days in `zone`; `tally.rows` counts the rows
        written."""
        parts = self.parts_for(tally.total)
        bounds = ["", *(await source.part_bounds(batch_id, parts)), LAST_KEY]
        spool = Path(tempfile.mkdtemp(prefix="report-parts-"))
        futures = [
            self._submit(write_part, source_url, zone, batch_id, assessments, lower, upper, str(spool / f"{i}.csv"))
            for i, (lower, upper) in enumerate(itertools.pairwise(bounds))
        ]
        try:
            for i, future in enumerate(futures):
                async for chunk in _tail(spool / f"{i}.csv", future):
                    yield chunk
                tally.rows += await future
        finally:
            for future in futures:
                future.cancel()
            await asyncio.gather(*futures, return_exceptions=True)
            shutil.rmtree(spool, ignore_errors=True)


async def _tail(path: Path, writer: asyncio.Future[int] | Future[int]) -> AsyncIterator[bytes]:
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
