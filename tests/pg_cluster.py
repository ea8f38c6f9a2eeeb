"""The throwaway PostgreSQL cluster (`hub.embedded`) for the session, and a fresh database for each test.

`PG_DSN` (a server the tests may create databases on) replaces the cluster. Otherwise `initdb` makes
one in a temporary folder, on a free port, never touching a system PostgreSQL. Its default collation
is ICU's English: a database whose locale sorts `B` before `a` is what makes a query that forgets
byte order give a different CSV than SQLite, so the tests can see it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from hub.embedded import throwaway_cluster


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


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
