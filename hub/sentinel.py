"""A `redis+sentinel://` REDIS_URL, read into where the sentinels are and which primary they watch.

`redis+sentinel://[user:pass@]host1:26379,host2:26379/<service>[/db]` (`rediss+sentinel://` for TLS):
the user and password are the data nodes' (primary and replicas); the sentinels' own password, when they
have one, is `REDIS_SENTINEL_PASSWORD`. redis-py has no URL for this, and `urlparse` cannot read a list of
hosts, so the parts are taken apart here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_PORT = 26379
SHAPE = "redis+sentinel://[user:pass@]host1:26379,host2:26379/<service>[/db]"


@dataclass(frozen=True)
class SentinelAddress:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0] in SCHEMES


def _host(part: str) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port`."""
    if part.startswith("["):
        host, bracket, rest = part[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("a bracketed sentinel address is not [IPv6]:port")
        port = rest[1:]
    else:
        host, _, port = part.partition(":")
    if not host:
        raise ValueError("a sentinel address has no host")
    if not port:
        return host, DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("a sentinel port is not a port number")
    return host, int(port)


def parse(url: str) -> SentinelAddress:
    """The address; ValueError says what is wrong, quoting nothing (a password with a stray `/` or `@` would
    land in any part)."""
    scheme, separator, rest = url.partition("://")
    if scheme not in SCHEMES or not separator:
        raise ValueError(f"it does not start with {' or '.join(s + '://' for s in SCHEMES)}")
    if "?" in rest or "#" in rest:
        raise ValueError("it takes no query string or fragment")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        hosts = netloc
    username, colon, password = userinfo.partition(":")
    if not hosts:
        raise ValueError("it names no sentinel")
    sentinels = tuple(_host(part.strip()) for part in hosts.split(","))
    service, _, db = path.partition("/")
    if not service:
        raise ValueError("it names no service (the primary's name in `sentinel monitor`)")
    db = db.rstrip("/")
    if db and not db.isdigit():
        raise ValueError("the database is not a number")
    return SentinelAddress(
        sentinels=sentinels,
        service=unquote(service),
        db=int(db or 0),
        tls=scheme == "rediss+sentinel",
        username=unquote(username) or None,
        password=unquote(password) if colon else None,
    )
