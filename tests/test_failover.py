"""Redis failing over under real `hub serve` and `hub worker` processes: a primary, a replica and three
sentinels on loopback (tests/sentinel.py), reached through `redis+sentinel://` or through haproxy as one
endpoint (a managed cache). With a big report under way and a burst of clicks across many (user, batch)
pairs in flight, the primary is SIGKILLed, failed over on purpose (`SENTINEL FAILOVER`: the demoted node
answers READONLY), or killed and then failed back. What must hold: no 500; the same processes carry on;
every accepted click ends with exactly one terminal event in its user's log and its job's timeline; every
completed link downloads; at most one unfinished job per (user, batch); event ids keep increasing, and
a client resuming from any id it saw misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis
from redis.exceptions import ReadOnlyError

from hub import keys
from hub.app import create_app
from hub.config import load
from hub.connections import patient_client
from hub.embedded import free_port
from hub.identity import mint_token
from hub.job import Job
from hub.source.seed import seed
from tests.helpers import SECRET, start_hub_process, stop_process, wait_until_ready
from tests.sentinel import Topology, replicated

SUBMIT = "/v1/reports/course-progress"
MENTORS = [f"mentor-fo-{n}" for n in range(4)]
BATCHES_EACH = 3
BIG = "batch-fo-big"
TERMINAL = {"report.completed", "report.failed"}


@pytest.fixture
async def topology(tmp_path: Path) -> AsyncIterator[Topology]:
    redis = await replicated(tmp_path)
    yield redis
    redis.stop()


@pytest.fixture
async def pairs(source: Any) -> list[tuple[str, str]]:
    """(mentor, batch) pairs with small batches, and one big batch of the first mentor's that takes a while."""
    made = []
    for m, mentor in enumerate(MENTORS):
        for b in range(BATCHES_EACH):
            batch_id = f"batch-fo-{m}-{b}"
            await seed(source, 30, batch_id=batch_id, course_id="do_fo", mentor_id=mentor, progress=None)
            made.append((mentor, batch_id))
    await seed(source, 120_000, batch_id=BIG, course_id="do_fo", mentor_id=MENTORS[0], progress=None)
    return made


class Fleet:
    """Two hubs and two workers, each its own process, on one REDIS_URL."""

    def __init__(self, hubs: list[str], processes: list[asyncio.subprocess.Process], logs: list[Path]) -> None:
        self.hubs = hubs
        self.processes = processes
        self.logs = logs
        self.statuses: list[int] = []
        # Clicks on a pair with no job yet that were first answered 409: a submit sent again after it ran
        # (its reply lost in the failover) found its own guard.
        self.refused_own: list[tuple[str, str]] = []

    def all_alive(self) -> bool:
        return all(process.returncode is None for process in self.processes)

    async def click(self, session: aiohttp.ClientSession, n: int, user: str, batch_id: str, fresh: bool = False) -> str:
        """Clicks (on alternating hubs) until the hub says a job runs: its id (202, or 409 naming it).
        `fresh`: the pair has no job yet, so a 409 to the first try can only be the click's own job."""
        headers = {"Authorization": f"Bearer {mint_token(user, ['COURSE_MENTOR'], 600, SECRET)}"}
        first = True
        async with asyncio.timeout(90):
            while True:
                url = self.hubs[n % len(self.hubs)] + SUBMIT
                async with session.post(url, json={"batchId": batch_id}, headers=headers) as response:
                    self.statuses.append(response.status)
                    body = await response.json()
                if fresh and first and response.status == 409:
                    self.refused_own.append((user, batch_id))
                first = False
                if response.status in (202, 409):
                    return str(body["result"]["jobId"])
                assert response.status == 503, (body, self.logs[n % len(self.hubs)].read_text()[-6000:])
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")) / 5)


@contextlib.asynccontextmanager
async def fleet(env: dict[str, str], redis_url: str, folder: Path, replicas: int) -> AsyncIterator[Fleet]:
    common = {**env, "REDIS_URL": redis_url, "REDIS_WAIT_REPLICAS": str(replicas), "QUEUE_WAIT": "8",
              "SWEEP_INTERVAL": "0.5", "RATE_LIMIT": "100000",
              "READ_RATE_LIMIT": "100000", "LOG_FORMAT": "text", "REPORT_TIMEOUT": "60"}  # fmt: skip
    hubs, processes, logs = [], [], []
    try:
        for n in range(2):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            log = folder / f"hub-{n}.log"
            processes.append(await start_hub_process("serve", env={**common, "PORT": str(port), "PUBLIC_URL": url},
                                                     log=log))  # fmt: skip
            hubs.append(url)
            logs.append(log)
        for n in range(2):
            log = folder / f"worker-{n}.log"
            # Links the workers sign point at the first hub.
            processes.append(await start_hub_process("worker", env={**common, "PUBLIC_URL": hubs[0]}, log=log))
            logs.append(log)
        for url in hubs:
            await wait_until_ready(url)
        await workers_alive(hubs[0], 2)
        yield Fleet(hubs, processes, logs)
    finally:
        for process in processes:
            await stop_process(process)


async def workers_alive(hub: str, count: int, within: float = 30) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(within):
        while True:
            async with session.get(f"{hub}/readyz") as ready:
                if (await ready.json()).get("workersAlive") == count:
                    return
            await asyncio.sleep(0.2)


async def user_log(redis: Redis, user: str) -> list[dict[str, Any]]:
    entries = await redis.xrange(keys.user_events(user))
    return [{"id": entry_id.decode(), **orjson.loads(fields[b"e"])} for entry_id, fields in entries]


async def endings(redis: Redis, jobs: dict[str, str], within: float = 90) -> dict[str, list[dict[str, Any]]]:
    """Waits until every job has ended; each job's terminal events, from its user's log."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while True:
                found: dict[str, list[dict[str, Any]]] = {job_id: [] for job_id in jobs}
                for user in set(jobs.values()):
                    for event in await user_log(redis, user):
                        if event["type"] in TERMINAL and event["jobId"] in found:
                            found[event["jobId"]].append(event)
                if all(found.values()):
                    return found
                await asyncio.sleep(0.5)
    unended = {job_id: await redis.hgetall(keys.job(job_id)) for job_id, events in found.items() if not events}
    raise AssertionError(f"jobs with no terminal event (their records): {unended}")


async def unfinished_per_pair(redis: Redis, users: set[str]) -> dict[tuple[str, str], int]:
    """How many jobs of each (user, batch) have not ended, from the job records."""
    counts: dict[tuple[str, str], int] = {}
    for user in users:
        for job_id in await redis.zrange(keys.user_jobs(user), 0, -1):
            job = Job.decode(await redis.hgetall(keys.job(job_id.decode())))
            if job is not None and not job.status.ended:
                counts[(user, job.batch_id)] = counts.get((user, job.batch_id), 0) + 1
    return counts


async def timeline_endings(redis: Redis, job_id: str) -> int:
    frames = [orjson.loads(frame) for frame in await redis.lrange(keys.job_events(job_id), 0, -1)]
    return sum(frame["type"] in TERMINAL for frame in frames)


async def under_way(redis: Redis, user: str, job_id: str, within: float = 30) -> None:
    """Waits until the report is being written (its first progress event), or has ended already (a fast
    machine), so the primary breaks while it is made."""
    async with asyncio.timeout(within):
        while True:
            events = [e["type"] for e in await user_log(redis, user) if e["jobId"] == job_id]
            if "report.progress" in events or TERMINAL & set(events):
                return
            await asyncio.sleep(0.05)


def ids_increase(events: list[dict[str, Any]]) -> bool:
    ids = [tuple(int(part) for part in event["id"].split("-")) for event in events]
    return all(a < b for a, b in itertools.pairwise(ids))


async def burst(
    fleet: Fleet, session: aiohttp.ClientSession, pairs: list[tuple[str, str]], fresh: bool = False
) -> dict[str, str]:
    """One click on every pair, all at once: job id -> user."""
    clicks = (fleet.click(session, n, user, batch, fresh) for n, (user, batch) in enumerate(pairs))
    job_ids = await asyncio.gather(*clicks)
    return {job_id: user for job_id, (user, _) in zip(job_ids, pairs, strict=True)}


async def break_primary(topology: Topology, how: str) -> None:
    if how == "planned":
        await topology.failover()
        return
    old = await topology.primary()
    topology.kill(old)
    new = await topology.promoted(other_than=old)
    if how == "kill and fail back":
        topology.start_node(old, replica_of=new)
        await topology.synced()
        topology.kill(new)
        await topology.promoted(other_than=new)


async def check_outcome(fleet: Fleet, redis: Redis, session: aiohttp.ClientSession, jobs: dict[str, str]) -> None:
    ended = await endings(redis, jobs)
    assert 500 not in fleet.statuses
    assert fleet.refused_own == [], "a click was answered 409 for its own job (issue 14.2: a re-sent submit)"
    assert fleet.all_alive(), [log.read_text()[-2000:] for log in fleet.logs]
    assert {job_id: len(events) for job_id, events in ended.items() if len(events) != 1} == {}
    for events in ended.values():
        if events[0]["type"] == "report.completed":
            async with session.get(events[0]["downloadUrl"]) as download:
                assert download.status == 200, events[0]
    assert {job_id: n for job_id in jobs if (n := await timeline_endings(redis, job_id)) != 1} == {}
    for user in set(jobs.values()):
        assert ids_increase(await user_log(redis, user))
        assert await resuming_from_any_id_misses_nothing(session, fleet.hubs[0], user)


async def resuming_from_any_id_misses_nothing(session: aiohttp.ClientSession, hub: str, user: str) -> bool:
    """A client that saw any event of the user's log and asks the hub for what came after (as a socket,
    a stream or a poll resumes) gets exactly the rest of the log."""
    headers = {"Authorization": f"Bearer {mint_token(user, ['COURSE_MENTOR'], 600, SECRET)}"}

    async def after(event_id: str | None) -> list[str]:
        """Every event after `event_id`, page by page as a polling client reads them."""
        found: list[str] = []
        while True:
            params = {"after": found[-1] if found else event_id} if found or event_id else {}
            async with session.get(hub + "/v1/notifications", params=params, headers=headers) as response:
                result = (await response.json())["result"]
            assert not result["resync"]
            if not result["events"]:
                return found
            found += [event["id"] for event in result["events"]]

    seen = await after(None)
    return bool(seen) and all([await after(event_id) == seen[i + 1 :] for i, event_id in enumerate(seen)])


@pytest.mark.parametrize(
    ("through", "how"),
    [("sentinel", "kill"), ("sentinel", "planned"), ("sentinel", "kill and fail back"), ("haproxy", "kill"),
     ("haproxy", "planned")],
)  # fmt: skip
async def test_clicks_across_a_failover_each_end_exactly_once(
    topology: Topology, pairs: list[tuple[str, str]], env: dict[str, str], tmp_path: Path, how: str, through: str
) -> None:
    if through == "haproxy":
        topology.start_proxy()
        await topology.proxied()
    url = topology.sentinel_url if through == "sentinel" else topology.endpoint_url
    redis = patient_client(load({"REDIS_URL": topology.sentinel_url}))
    # A planned failover keeps a replica (the old primary), so clicks wait for it: none acknowledged is lost.
    replicas = 1 if how == "planned" else 0
    async with fleet(env, url, tmp_path, replicas) as running, aiohttp.ClientSession() as session:
        big = await running.click(session, 0, MENTORS[0], BIG, fresh=True)
        await under_way(redis, MENTORS[0], big)
        clicking = asyncio.create_task(burst(running, session, pairs, fresh=True))
        await break_primary(topology, how)
        jobs = {big: MENTORS[0], **await clicking}
        assert max((await unfinished_per_pair(redis, set(MENTORS))).values(), default=0) <= 1
        jobs |= await burst(running, session, pairs)
        assert max((await unfinished_per_pair(redis, set(MENTORS))).values(), default=0) <= 1
        await check_outcome(running, redis, session, jobs)
    await redis.aclose()


async def test_a_node_that_answers_readonly_makes_a_click_503_not_500(
    env: dict[str, str], batch: dict[str, Any], tmp_path: Path, token: Any
) -> None:
    """A hub whose connection reaches a demoted primary (a replica) meets READONLY on every write: it tries
    again, with a reconnect, within its budget, then says 503, try again."""
    nodes = await replicated(tmp_path, sentinels=0)
    replica = nodes.node_ports[1]
    server = TestServer(create_app(load({**env, "REDIS_URL": f"redis://127.0.0.1:{replica}/0"})), host="127.0.0.1",
                        port=free_port())  # fmt: skip
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session, session.post(
            str(server.make_url(SUBMIT)), json={"batchId": "batch-0001"},
            headers={"Authorization": f"Bearer {token()}"},
        ) as response:  # fmt: skip
            status, retry_after, body = response.status, response.headers.get("Retry-After"), await response.json()
        async with Redis(port=replica) as plain:
            with pytest.raises(ReadOnlyError):
                await plain.set("anything", 1)
    finally:
        await server.close()
        nodes.stop()
    assert (status, body["params"]["err"]) == (503, "SERVICE_UNAVAILABLE")
    assert retry_after is not None


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://127.0.0.1:26379",
        "redis+sentinel:///hubmaster",
        "redis+sentinel://h1:26379,h2:port/hubmaster",
        "rediss+sentinel://:s3cret@h1:26379/hubmaster/zero",
    ],
)
def test_a_malformed_sentinel_url_stops_the_process_with_one_line(url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "hub", "worker"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "REDIS_URL": url})  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2
    assert len(lines) == 1 and "REDIS_URL" in lines[0]
    assert "s3cret" not in done.stderr
