"""Fan-out: how fast a user's event reaches every one of their open sockets, on one or two hub instances.

Starts an embedded Valkey and two real `hub serve` processes, then for each size opens that many
WebSockets (`--per-user` of them per user, a user's sockets alternating between the instances in use),
and stores `--events` `report.progress` events per user straight into the event log, each user at
`--rate` events a second (the contract's most for progress; users start evenly spread over one period).
Every frame's latency is measured from just before its event was stored to its arrival on a socket, and
every socket must get every event of its user exactly once and in id order. The reference, measured in
the same run at the same rate: a bare Redis PUBLISH received by a redis-py subscriber in this process.

    .venv/bin/python -m bench.fanout                                  # 100, 1,000, 5,000 sockets; 1 and 2 hubs
    .venv/bin/python -m bench.fanout --sizes 1000 --instances 2 --events 20 --rate 5

The bench process, Valkey and the hubs share this machine's cores, so three more columns, taken while
events are emitted and delivered, say what a latency was made of: the hubs' CPU time per delivered frame
(their cost, whatever the load), this process's own event-loop lag (when it is high, the receiving end is
what was measured), and how busy the machine's cores were (near 100%, everyone was waiting for a core).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import psutil
from redis.asyncio import Redis

from bench.harness import LINK_SECRET, hub_command, table, wait_until_up
from hub import events
from hub.embedded import embedded_redis, free_port
from hub.events import EventLog
from hub.identity import mint_token

SECRET = "bench-secret-that-is-long-enough-for-hs256"
RETENTION = 1000
CONNECT_CONCURRENCY = 64
SETTLE_TIMEOUT = 20.0  # after the last event is stored, how long every frame may take to arrive


def raise_open_file_limit(wanted: int) -> None:
    """Sockets are files: this process holds one per WebSocket, and the hubs inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        print(f"open-file limit {target} < {wanted}: the largest sizes may fail", file=sys.stderr)


@dataclass
class Instance:
    base: str
    process: psutil.Process

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system


@contextlib.contextmanager
def hubs(redis_url: str, count: int, folder: Path) -> Iterator[list[Instance]]:
    """`count` `hub serve` processes on one Valkey; their logs go to `folder`. Ended on any exit."""
    common = {**os.environ, "REDIS_URL": redis_url, "JWT_SECRET": SECRET, "LINK_SECRET": LINK_SECRET,
              "HOST": "127.0.0.1", "RATE_LIMIT": "1000000", "EVENT_RETENTION": str(RETENTION),
              "SOURCE_URL": f"sqlite:///{folder / 'hub.db'}", "STORAGE_URL": f"file://{folder / 'reports'}",
              "TELEMETRY_PATH": str(folder / "telemetry.jsonl")}  # fmt: skip
    # /readyz reads the source: give it its tables (one tiny batch) before any hub starts.
    subprocess.run(hub_command("seed", "--participants", "1"), env=common, check=True, capture_output=True)
    started: list[subprocess.Popen] = []
    instances = []
    try:
        for index in range(count):
            port = free_port()
            env = {**common, "PORT": str(port), "PUBLIC_URL": f"http://127.0.0.1:{port}"}
            with open(folder / f"hub-{index}.log", "wb") as log:
                started.append(subprocess.Popen(hub_command("serve"), env=env, stdout=log, stderr=log,
                                                start_new_session=True))  # fmt: skip
            instances.append(Instance(f"http://127.0.0.1:{port}", psutil.Process(started[-1].pid)))
        yield instances
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Socket:
    user: str
    ws: aiohttp.ClientWebSocketResponse
    ids: list[str] = field(default_factory=list)


@dataclass
class Run:
    """What one size delivered: latencies in seconds and the ids each socket saw."""

    sockets: list[Socket]
    expected: int
    latencies: list[float] = field(default_factory=list)
    first_sent: float = 0.0
    last_received: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def received(self, socket: Socket, frame: str) -> None:
        now = time.perf_counter()
        event = orjson.loads(frame)
        if event.get("type") == "heartbeat":  # a socket quiet for HEARTBEAT_INTERVAL while the others connect
            return
        self.latencies.append(now - event["sent"])
        socket.ids.append(event["id"])
        self.last_received = now
        if len(self.latencies) == self.expected:
            self.done.set()


async def open_socket(session: aiohttp.ClientSession, base: str, user: str, token: str) -> Socket:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{base}/v1/notifications/ticket", headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"ticket refused: {response.status} {await response.text()}")
        ticket = (await response.json())["result"]["ticket"]
    ws = await session.ws_connect(f"{base}/v1/notifications/ws?ticket={ticket}", max_msg_size=0)
    return Socket(user, ws)


async def open_sockets(session: aiohttp.ClientSession, bases: list[str], users: list[str], per_user: int) -> list:
    """`per_user` sockets for each user, a user's sockets taking the instances in turn."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    tokens = {user: mint_token(user, ["COURSE_MENTOR"], 3600, SECRET) for user in users}

    async def one(user: str, index: int) -> Socket:
        async with gate:
            return await open_socket(session, bases[index % len(bases)], user, tokens[user])

    return await asyncio.gather(*(one(user, i) for user in users for i in range(per_user)))


async def listen(run: Run, socket: Socket) -> None:
    async for message in socket.ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            run.received(socket, message.data)


async def paced(users: list[str], count: int, rate: float, send) -> None:
    """Calls `send(user, i)` `count` times per user, each user at `rate` a second, users spread evenly."""
    period = 1.0 / rate
    began = time.perf_counter()

    async def one_user(offset: float, user: str) -> None:
        for i in range(count):
            delay = began + offset + i * period - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(user, i)

    await asyncio.gather(*(one_user(period * n / len(users), user) for n, user in enumerate(users)))


async def open_sockets_gauge(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    return int(sum(float(line.split()[1]) for line in text.splitlines() if line.startswith("hub_open_connections{")))


async def hubs_count(session: aiohttp.ClientSession, hubs: list[Instance], expected: int) -> None:
    """The hubs' own `hub_open_connections` must agree (the last size's handlers may still be finishing)."""
    for _ in range(100):
        gauges = [await open_sockets_gauge(session, hub.base) for hub in hubs]
        if sum(gauges) == expected:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the hubs count {gauges} open sockets, {expected} were opened")


class LoopLag:
    """How late this process's own event loop runs: when it is busy, every latency it measures grows."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(time.perf_counter() - began - 0.001)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@dataclass
class Result:
    users: int
    sockets: int
    events: int
    expected: int
    wrong: int  # sockets whose frames were not exactly their user's events, once each, in id order
    latencies: list[float]
    seconds: float
    lags: list[float]
    hub_cpu: float  # CPU seconds the hubs spent while events were emitted and delivered
    box_cpu: float  # percent of all of this machine's cores busy meanwhile (hubs, Valkey and this process)


async def fan_out(session, redis: Redis, hubs: list[Instance], size: int, per_user: int, count: int,
                  rate: float) -> Result:  # fmt: skip
    users = [f"bench-user-{size}-{len(hubs)}-{n:05d}" for n in range(max(1, size // per_user))]
    sockets = await open_sockets(session, [hub.base for hub in hubs], users, per_user)
    await hubs_count(session, hubs, len(sockets))
    run = Run(sockets, expected=len(sockets) * count)
    listeners = [asyncio.create_task(listen(run, s)) for s in sockets]
    log = EventLog(redis, RETENTION)
    emitted: dict[str, list[str]] = defaultdict(list)

    async def emit(user: str, i: int) -> None:
        event = events.body("report.progress", "bench-job", "bench-batch", rows=i, sent=time.perf_counter())
        emitted[user].append(await log.emit(user, "bench-job", event))

    cpu = sum(hub.cpu_seconds() for hub in hubs)
    psutil.cpu_percent()
    run.first_sent = time.perf_counter()
    try:
        with LoopLag() as lag:
            await paced(users, count, rate, emit)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.done.wait(), SETTLE_TIMEOUT)
        cpu = sum(hub.cpu_seconds() for hub in hubs) - cpu
        box = psutil.cpu_percent()
    finally:
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*(s.ws.close() for s in sockets), return_exceptions=True)
        await asyncio.gather(*listeners, return_exceptions=True)
    wrong = sum(s.ids != sorted(emitted[s.user], key=events.parse_id) for s in sockets)
    return Result(users=len(users), sockets=len(sockets), events=sum(map(len, emitted.values())),
                  expected=run.expected, wrong=wrong, latencies=run.latencies,
                  seconds=run.last_received - run.first_sent, lags=lag.lags, hub_cpu=cpu,
                  box_cpu=box)  # fmt: skip


async def reference(redis_url: str, users: int, count: int, rate: float) -> list[float]:
    """A bare PUBLISH to a pattern subscriber in this process, at the same pace: the floor of any fan-out."""
    publisher, subscriber = Redis.from_url(redis_url), Redis.from_url(redis_url)
    pubsub = subscriber.pubsub()
    await pubsub.psubscribe("bench:ref:*")
    latencies: list[float] = []
    expected = users * count

    async def receive() -> None:
        while len(latencies) < expected:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                latencies.append(time.perf_counter() - orjson.loads(message["data"])["sent"])

    async def send(user: str, i: int) -> None:
        body = events.body("report.progress", "bench-job", "bench-batch", rows=i, sent=time.perf_counter())
        await publisher.publish(f"bench:ref:{user}", body)

    receiver = asyncio.create_task(receive())
    try:
        await paced([f"ref-{n}" for n in range(users)], count, rate, send)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver, SETTLE_TIMEOUT)
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
        await pubsub.aclose()
        await publisher.aclose()
        await subscriber.aclose()
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values) or [float("nan")]
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


HEADER = ["sockets", "users", "hub instances", "events", "delivered", "exactly once, in order", "median ms",
          "p99 ms", "max ms", "deliveries/s", "ref median ms", "ref p99 ms", "x ref median", "x ref p99",
          "hub CPU us/delivery", "bench loop lag p99 ms", "box CPU %"]  # fmt: skip


def row(result: Result, instances: int, ref: list[float]) -> list[str]:
    delivered = len(result.latencies)
    median, p99 = percentile(result.latencies, 0.5) * 1000, percentile(result.latencies, 0.99) * 1000
    ref_median, ref_p99 = percentile(ref, 0.5) * 1000, percentile(ref, 0.99) * 1000
    complete = delivered == result.expected and not result.wrong
    return [f"{result.sockets:,}", f"{result.users:,}", str(instances), f"{result.events:,}", f"{delivered:,}",
            "yes" if complete else f"NO: {result.expected - delivered:,} missing, {result.wrong:,} sockets wrong",
            f"{median:.1f}", f"{p99:.1f}", f"{max(result.latencies, default=float('nan')) * 1000:.1f}",
            f"{delivered / result.seconds:,.0f}", f"{ref_median:.2f}", f"{ref_p99:.2f}", f"{median / ref_median:,.0f}",
            f"{p99 / ref_p99:,.0f}", f"{result.hub_cpu / max(delivered, 1) * 1e6:.0f}",
            f"{percentile(result.lags, 0.99) * 1000:.1f}", f"{result.box_cpu:.0f}"]  # fmt: skip


async def measure(redis_url: str, hubs: list[Instance], args: argparse.Namespace, folder: Path) -> list[list[str]]:
    rows = []
    connector = aiohttp.TCPConnector(limit=0)  # every WebSocket holds its own connection
    async with aiohttp.ClientSession(connector=connector) as session:
        for hub in hubs:
            await wait_until_up(session, hub.base, f"the logs in {folder}")
        redis = Redis.from_url(redis_url)
        try:
            for size in args.sizes:
                ref = await reference(redis_url, max(1, size // args.per_user), args.events, args.rate)
                for instances in args.instances:
                    began = time.perf_counter()
                    result = await fan_out(session, redis, hubs[:instances], size, args.per_user, args.events,
                                           args.rate)  # fmt: skip
                    rows.append(row(result, instances, ref))
                    print(f"  {size:>6,} sockets on {instances}: median {rows[-1][6]} ms, p99 {rows[-1][7]} ms "
                          f"({time.perf_counter() - began:.0f} s)", file=sys.stderr)  # fmt: skip
        finally:
            await redis.aclose()
    return rows


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, interrupt)  # `kill` ends a run like Ctrl-C: through the same clean-up
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 5_000], help="sockets, in all")
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--per-user", type=int, default=10, help="open sockets per user")
    parser.add_argument("--events", type=int, default=10, help="events per user")
    parser.add_argument("--rate", type=float, default=2.0, help="events a second per user")
    args = parser.parse_args()
    raise_open_file_limit(max(args.sizes) + 1024)
    folder = Path(tempfile.mkdtemp(prefix="hub-fanout-"))
    print(f"{args.per_user} sockets a user, {args.events} events a user at {args.rate:g}/s; hub logs in {folder}",
          file=sys.stderr)  # fmt: skip
    with embedded_redis() as redis_url, hubs(redis_url, max(args.instances), folder) as instances:
        rows = asyncio.run(measure(redis_url, instances, args, folder))
    print(table(HEADER, rows))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
