"""Support's search over many jobs: answered from the indexes (by reference, mentor, batch, day), never a
scan. Loads N jobs (default 100,000: 2,000 mentors, 5,000 batches, a week of days, one in ten failed) into
an embedded Valkey, the way the hub writes them, then times each kind of search through the hub's own
search code. The reference is the search a hub without indexes would make, measured in the same run on
the same data: SCAN the job records, read each, filter.

    .venv/bin/python -m bench.support_search
    .venv/bin/python -m bench.support_search --jobs 20000 --repeat 20
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import datetime

from redis.asyncio import Redis

from bench.harness import table
from hub import keys
from hub.config import load
from hub.embedded import embedded_redis
from hub.events import EventLog
from hub.job import Job, Status
from hub.reports import Jobs
from hub.support.index import DAY_MS, JobIndex, index_keys
from hub.support.search import Query, parse, search

WEEK_MS = 7 * DAY_MS
LOAD_CHUNK = 2_000


def made_up(count: int, now_ms: int, rng: random.Random) -> list[Job]:
    jobs = []
    for _ in range(count):
        failed = rng.random() < 0.1
        jobs.append(Job(
            job_id=uuid.UUID(int=rng.getrandbits(128), version=4).hex,
            batch_id=f"batch-{rng.randrange(5_000):05d}",
            course_id="do_course_0001",
            requested_by=f"mentor-{rng.randrange(2_000):05d}",
            status=Status.FAILED if failed else Status.SUCCESS,
            submitted_at=now_ms - rng.randrange(WEEK_MS),
            file_name="report.csv",
            error="NO_WORKER" if failed else None,
        ))  # fmt: skip
    return jobs


async def load_jobs(redis: Redis, jobs: list[Job], kept_ms: int) -> None:
    """What submitting and indexing write, many jobs to a round trip."""
    for start in range(0, len(jobs), LOAD_CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for job in jobs[start : start + LOAD_CHUNK]:
                record = job.encode() | ({"error": job.error} if job.error else {})
                pipe.hset(keys.job(job.job_id), mapping=record)
                pipe.pexpire(keys.job(job.job_id), kept_ms)
                for key in index_keys(job):
                    pipe.zadd(key, {job.job_id: job.submitted_at})
                    pipe.pexpire(key, kept_ms)
            await pipe.execute()


async def scan_search(redis: Redis, jobs: Jobs, query: Query) -> list[Job]:
    """The reference: every job record read and filtered, newest first."""
    found = []
    async for key in redis.scan_iter(match=keys.job("*").replace("%2A", "*"), count=1_000):
        job = Job.decode(await redis.hgetall(key))
        if job is not None and query.matches(job) and query.low <= job.submitted_at <= query.high:
            found.append(job)
    found.sort(key=lambda job: (job.submitted_at, job.job_id), reverse=True)
    return found[: query.limit]


async def timed(work, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    with embedded_redis() as url:
        settings = load({"REDIS_URL": url})
        redis = Redis.from_url(url)
        now = int(time.time() * 1000)
        jobs = Jobs(redis, EventLog(redis, 1000, settings.records_kept_seconds), settings)  # type: ignore[arg-type]
        index = JobIndex(redis, jobs.deadline_ms + settings.records_kept_seconds * 1000)
        made = made_up(args.jobs, now, random.Random(7))
        started = time.perf_counter()
        await load_jobs(redis, made, index.kept_ms)
        print(f"loaded {len(made):,} jobs in {time.perf_counter() - started:.1f} s")
        sample = made[len(made) // 2]
        yesterday = f"{datetime.fromtimestamp((now - DAY_MS) / 1000, settings.report_zone):%Y-%m-%d}"
        searches = {
            "by reference": {"ref": sample.ref},
            "by mentor": {"userId": sample.requested_by},
            "by batch": {"batchId": sample.batch_id},
            "one day, failed": {"from": yesterday, "to": yesterday, "status": "FAILED"},
            "everything, newest": {},
        }
        rows = []
        reference_query = parse({"userId": sample.requested_by}, settings.report_zone, now, index.kept_ms)
        reference_ms, _ = await timed(lambda: scan_search(redis, jobs, reference_query), 1)
        for name, criteria in searches.items():
            query = parse(criteria, settings.report_zone, int(time.time() * 1000), index.kept_ms)
            ms, (found, _) = await timed(lambda q=query: search(index, jobs, q), args.repeat)
            rows.append([name, f"{len(found)}", f"{ms:.2f}", f"{reference_ms / ms:,.0f}"])
        rows.append(["by mentor, SCAN (reference)", "", f"{reference_ms:.0f}", "1"])
        print(f"\n{args.jobs:,} jobs; median of {args.repeat} searches (one page, at most 20 rows):\n")
        print(table(["search", "rows", "median ms", "x faster than SCAN"], rows))
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
