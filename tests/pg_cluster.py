"""A throwaway PostgreSQL cluster for the session, and a fresh database for each test that asks for one.

`PG_DSN` (a server the tests may create databases on) replaces the cluster. Otherwise `initdb` makes
one in a temporary folder, on a free port, never touching a system PostgreSQL. Its default collation
is ICU's English: a database whose locale sorts `B` before `a` is what makes a query that forgets
byte order give a different CSV than SQLite, so the tests can see it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.conftest import free_port


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


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str]:
    """A PostgreSQL cluster in a temporary folder on a free port, removed afterwards; yields the DSN
    of its `postgres` database. The benchmark uses it too."""
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


def restart(data_directory: str) -> None:
    """`pg_ctl restart -m fast`, as an operator would: every connection is cut, and for a moment the
    server refuses new ones ("the database system is shutting down", then "starting up")."""
    pg_ctl = [str(_bindir() / "pg_ctl"), "-D", data_directory, "-l", f"{data_directory}/log", "-m", "fast", "-w",
              "restart"]  # fmt: skip
    _run([*_as_owner(), *pg_ctl])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The DSN of a server's `postgres` database, on which each test's database is created."""
    if os.environ.get("PG_DSN"):
        yield os.environ["PG_DSN"]
        return
    with throwaway_cluster() as dsn:
        yield dsn


@pytest.fixture
async def pg_url(postgres_server: str) -> AsyncIterator[str]:
    """A new, empty database for one test, dropped after it (with any connections left open)."""
    name = f"hub_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield with_database(postgres_server, name)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
