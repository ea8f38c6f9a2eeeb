"""Click to "ready": how long a mentor waits for a course progress report, by batch size, source and
format (CSV and XLSX side by side, each XLSX time also as a ratio to the CSV's in the same run).

Seeds each size once per source, starts a real `hub serve` and `hub worker` (and an embedded Valkey),
then for each size clicks download several times through HTTP and waits for `report.completed` on a
WebSocket. Prints a table with the median and worst time, rows per second, the worker's peak memory
(its process and the part writers it starts), the seed's required limit, our goal, and the ratio to
the floor we chase: PostgreSQL's own `COPY (report query) TO STDOUT WITH CSV` into a file, measured in
the same run on the same data.

    .venv/bin/python -m bench.report                       # 10k, 50k, 100k, 1M; SQLite and PostgreSQL
    .venv/bin/python -m bench.report --sizes 10000 50000 --sources sqlite --repeat 3 --formats csv xlsx
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import psutil

from bench.harness import LINK_SECRET, hub_command, table, wait_until_up
from hub.config import load
from hub.embedded import embedded_redis, free_port, throwaway_cluster
from hub.identity import mint_token
from hub.source.postgres import SQL as POSTGRES_SQL
from hub.source.schema import LAST_KEY

MENTOR = "bench-mentor"
SECRET = "bench-secret-that-is-long-enough-for-hs256"
REQUIRED = [(10_000, 10.0), (50_000, 20.0), (100_000, 60.0), (float("inf"), 120.0)]
GOAL = [(10_000, 0.5), (50_000, 1.5), (100_000, 3.0), (1_000_000, 15.0), (float("inf"), 15.0)]


def limit(table: list[tuple[float, float]], size: int) -> float:
    return next(seconds for bound, seconds in table if size <= bound)


def seed(env: dict[str, str], source_url: str, size: int, seeded: set[tuple[str, int]]) -> None:
    """Seeds a size into a source once; the seed prints its own progress line."""
    if (source_url, size) in seeded:
        return
    print(f"  {source_url.split(':')[0]}:", file=sys.stderr)
    subprocess.run(
        hub_command("seed", "--participants", str(size), "--batch-id", f"bench-{size}", "--mentor", MENTOR),
        env={**env, "SOURCE_URL": source_url}, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seeded.add((source_url, size))


@contextlib.contextmanager
def processes(env: dict[str, str]) -> Iterator[tuple[str, psutil.Process]]:
    web = subprocess.Popen(hub_command("serve"), env=env, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen(hub_command("worker"), env=env, stderr=subprocess.DEVNULL)
    try:
        yield env["PUBLIC_URL"], psutil.Process(worker.pid)
    finally:
        for process in (web, worker):
            process.terminate()
            process.wait(timeout=20)


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total


class PeakMemory:
    """Samples the worker's memory while a report is made."""

    def __init__(self, process: psutil.Process) -> None:
        self._process = process
        self.peak = 0

    async def watch(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss(self._process))
            await asyncio.sleep(0.02)


async def click_to_ready(
    session: aiohttp.ClientSession, base: str, token: str, batch: str, fmt: str = "csv", ready: list | None = None
) -> float:
    """Seconds from the click to `report.completed`; that event is added to `ready` when given."""
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{base}/v1/notifications/ticket", headers=headers) as response:
        ticket = (await response.json())["result"]["ticket"]
    async with session.ws_connect(f"{base}/v1/notifications/ws?ticket={ticket}") as ws:
        began = time.perf_counter()
        body = {"batchId": batch, "format": fmt}
        async with session.post(f"{base}/v1/reports/course-progress", json=body, headers=headers) as r:
            if r.status != 202:
                raise RuntimeError(f"click refused: {r.status} {await r.text()}")
            job_id = (await r.json())["result"]["jobId"]
        async for message in ws:
            event = message.json()
            if event.get("jobId") != job_id:  # the user's other reports, made meanwhile
                continue
            if event["type"] == "report.completed":
                if ready is not None:
                    ready.append(event)
                return time.perf_counter() - began
            if event["type"] == "report.failed":
                raise RuntimeError(f"report failed: {event}")
    raise RuntimeError("socket closed before the report was ready")


async def sheet_rows(session: aiohttp.ClientSession, url: str, folder: Path) -> str:
    """The rows of each sheet of a downloaded XLSX, header included, counted by inflating each worksheet as
    a stream (which also checks its CRC): `1,000,001 + 11` for a batch of 1,000,010."""
    path = folder / "check.xlsx"
    async with session.get(url) as response:
        with path.open("wb") as out:
            async for chunk in response.content.iter_chunked(1 << 20):
                out.write(chunk)
    counts = []
    with zipfile.ZipFile(path) as archive:
        sheets = [name for name in archive.namelist() if name.startswith("xl/worksheets/")]
        for name in sorted(sheets, key=lambda name: int(name.removeprefix("xl/worksheets/sheet").split(".")[0])):
            rows, tail = 0, b""
            with archive.open(name) as sheet:
                while chunk := sheet.read(1 << 20):
                    data = tail + chunk
                    rows += data.count(b"<row>")
                    tail = data[-4:]
            counts.append(f"{rows:,}")
    path.unlink()
    return " + ".join(counts)


async def measure(
    base: str, worker: psutil.Process, sizes: list[int], repeat: int, formats: list[str], folder: Path
) -> dict[tuple[int, str], tuple]:
    token = mint_token(MENTOR, ["COURSE_MENTOR"], 3600, SECRET)
    results = {}
    async with aiohttp.ClientSession() as session:
        await wait_until_up(session, base)
        for size in sizes:
            for fmt in formats:
                memory = PeakMemory(worker)
                watcher = asyncio.create_task(memory.watch())
                ready: list[dict] = []
                times = [await click_to_ready(session, base, token, f"bench-{size}", fmt, ready) for _ in range(repeat)]
                watcher.cancel()
                sheets = await sheet_rows(session, ready[-1]["downloadUrl"], folder) if fmt == "xlsx" else ""
                results[size, fmt] = (statistics.median(times), max(times), memory.peak, sheets)
                print(f"  {size:>9,} {fmt}: median {results[size, fmt][0]:.2f}s", file=sys.stderr)
    return results


async def copy_floor(dsn: str, size: int, folder: Path) -> float:
    """PostgreSQL formatting the same report as CSV by itself, into a file: the floor."""
    conn = await asyncpg.connect(dsn)
    try:
        course = await conn.fetchval("SELECT course_id FROM batches WHERE batch_id = $1", f"bench-{size}")
        assessments = [r[0] for r in await conn.fetch(
            "SELECT content_id FROM course_assessments WHERE course_id = $1 ORDER BY position", course)]  # fmt: skip
        zone = load().report_zone  # the hub under test reads the same environment
        query = POSTGRES_SQL.report(len(assessments), zone)  # the very statement the PostgreSQL source runs
        args = [f"bench-{size}", *assessments, "", LAST_KEY]
        began = time.perf_counter()
        await conn.execute("SELECT set_config('TimeZone', $1, false)", zone.key)
        await conn.copy_from_query(query, *args, output=str(folder / f"floor-{size}.csv"), format="csv")
        return time.perf_counter() - began
    finally:
        await conn.close()


HEADER = ["source", "participants", "format", "median s", "x CSV", "max s", "rows/s", "worker peak MB",
          "required s", "goal s", "COPY floor s", "x floor", "meets goal", "sheets (rows)"]  # fmt: skip


def meets_goal(size: int, fmt: str, worst: float, peak: int, median: float, csv_median: float | None) -> bool:
    """The size's time goal, a worker under 250 MB, and an XLSX within 1.5x the CSV's time in the same run."""
    in_time = worst < limit(GOAL, size) and peak < 250 * 2**20
    return in_time and (fmt == "csv" or csv_median is None or median <= 1.5 * csv_median)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000, 1_000_000])
    parser.add_argument("--sources", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", nargs="+", default=["csv", "xlsx"], choices=["csv", "xlsx"])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    rows = []
    with embedded_redis() as redis_url:
        with throwaway_cluster() as dsn:
            floors: dict[int, float] = {}
            seeded: set[tuple[str, int]] = set()
            for source in args.sources:
                port = free_port()
                env = {**os.environ, "REDIS_URL": redis_url, "JWT_SECRET": SECRET, "LINK_SECRET": LINK_SECRET,
                       "PORT": str(port), "PUBLIC_URL": f"http://127.0.0.1:{port}",
                       "STORAGE_URL": f"file://{folder / 'reports'}",
                       "SOURCE_URL": f"sqlite:///{folder / 'bench.db'}" if source == "sqlite" else dsn}  # fmt: skip
                print(f"{source}:", file=sys.stderr)
                for size in args.sizes:
                    seed(env, env["SOURCE_URL"], size, seeded)
                    seed(env, dsn, size, seeded)
                    if size not in floors:
                        floors[size] = await copy_floor(dsn, size, folder)
                with processes(env) as (base, worker):
                    results = await measure(base, worker, args.sizes, args.repeat, args.formats, folder)
                for (size, fmt), (median, worst, peak, sheets) in results.items():
                    floor = floors[size]
                    csv_median = results.get((size, "csv"), (None,))[0]
                    to_csv = f"{median / csv_median:.2f}" if csv_median else ""
                    rows.append([source, f"{size:,}", fmt, f"{median:.2f}", to_csv, f"{worst:.2f}",
                                 f"{size / median:,.0f}",
                                 f"{peak / 2**20:.0f}", f"{limit(REQUIRED, size):g}", f"{limit(GOAL, size):g}",
                                 f"{floor:.2f}", f"{median / floor:.1f}",
                                 "yes" if meets_goal(size, fmt, worst, peak, median, csv_median) else "NO",
                                 sheets])  # fmt: skip
    print(table(HEADER, rows))


if __name__ == "__main__":
    asyncio.run(main())
