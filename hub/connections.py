"""Redis connections of the hub and the worker, built in one place (`prompt_client`, `patient_client`) for
every REDIS_URL: one node (`redis://`, `rediss://`, `unix://`, or a managed cache's single endpoint whose
primary changes under it) or a primary found through Sentinel (`redis+sentinel://`).

A failover looks like a restart with extras: connections reset, a node refuses connections, a demoted
primary answers writes with `READONLY`, a replica not yet in sync answers `LOADING` or `MASTERDOWN`, and the
sentinels may name no primary for a moment. Each of these is a connection error here: the connection is
dropped, the primary found again (asked of the sentinels, or reached anew through the endpoint) and the
command sent again, with backoff, until a budget of time is spent. A worker's budget outlasts a managed
cache's unplanned failover (10-15 s); a hub answers a person, so it gives up within about a second and says
503, try again. Since a connection that a proxy or NAT dropped without a word would otherwise hang forever,
reads time out and idle connections are checked before use.

arq's own Sentinel support drops the retry settings, so the worker's pool is built here and handed to arq.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from arq.connections import ArqRedis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection, SentinelManagedSSLConnection
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, ReadOnlyError, ResponseError, TimeoutError

from hub import sentinel
from hub.config import Settings

T = TypeVar("T")
RETRY_ON: list[type[Exception]] = [ConnectionError, TimeoutError, ConnectionResetError]
# What a node that is not (or not yet) a usable primary answers, beside READONLY (`LOADING` is a
# ConnectionError already); a script that wrote nothing runs on a replica, and the WAIT after it is refused.
NOT_THE_PRIMARY = ("MASTERDOWN", "NOREPLICAS", "WAIT cannot be used with replica")


@dataclass(frozen=True)
class Manner:
    """How a process's client waits: `budget_seconds` of retries for one command, and its timeouts."""

    budget_seconds: float
    backoff_cap_seconds: float
    connect_timeout_seconds: float
    read_timeout_seconds: float | None  # None: reads wait (the pub/sub connection waits for messages)
    health_check_seconds: int  # a pooled connection idle this long is pinged before it is used again


# No command of the hub's takes longer than its read timeout; one that does is on a dead connection.
PROMPT = Manner(budget_seconds=1.0, backoff_cap_seconds=0.25, connect_timeout_seconds=0.5,
                read_timeout_seconds=5.0, health_check_seconds=15)  # fmt: skip
# The pub/sub connection of `hub.bus` judges its own liveness by pings, and redis-py's read timeout can
# swallow the cancellation that stops it.
LISTENING = replace(PROMPT, read_timeout_seconds=None, health_check_seconds=0)
PATIENT = Manner(budget_seconds=20.0, backoff_cap_seconds=2.0, connect_timeout_seconds=2.0,
                 read_timeout_seconds=10.0, health_check_seconds=15)  # fmt: skip


def _stop_if_cancelled() -> None:
    """Python 3.11's `asyncio.wait_for`, which redis-py sends commands through, can swallow a cancellation
    that arrives as the command completes (fixed in 3.12): the task then runs on, still marked as cancelling,
    and a sweeper or a worker's loop never stops. A task asked to stop is stopped here, before it tries again."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Patience(Retry):
    """redis-py's Retry counts tries; this one tries again, with backoff, until its budget of seconds is
    spent, so a failover costs the same wait whatever shape it takes (refused connects, a primary not yet
    elected, READONLY). redis-py nests retries (a command's around its connect's): each layer keeps its own
    budget, so one command waits at most about twice the budget."""

    __slots__ = ("_budget",)

    def __init__(self, manner: Manner) -> None:
        super().__init__(ExponentialBackoff(cap=manner.backoff_cap_seconds, base=0.05), -1, tuple(RETRY_ON))
        self._budget = manner.budget_seconds

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[[Any], Any]) -> T:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._budget
        failures = 0
        while True:
            _stop_if_cancelled()
            try:
                return await do()
            except self._supported_errors as error:
                failures += 1
                await fail(error)
                pause = self._backoff.compute(failures)
                if loop.time() + pause > give_up_at:
                    raise
                await asyncio.sleep(pause)


class FailoverAware(AbstractConnection):
    """A connection that treats a refusal from a node that is not the primary as a lost connection: it
    disconnects, so the retry connects again and finds the primary (redis-py does this for READONLY only,
    and only through Sentinel)."""

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except ReadOnlyError as exc:
            await self.disconnect()
            raise ConnectionError(f"a demoted primary answered READONLY ({exc})") from exc
        except ResponseError as exc:
            if not str(exc).startswith(NOT_THE_PRIMARY):
                raise
            await self.disconnect()
            raise ConnectionError(f"a node that is not the primary answered {exc}") from exc


class FailoverRedis(ArqRedis):
    """redis-py takes a connection from the pool outside a command's retries, so a node that refuses
    connections (a primary just killed, an endpoint between nodes) would fail the command at once: here the
    whole command is tried again too, within the same budget."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        retry = self.connection_pool.connection_kwargs["retry"]
        return await retry.call_with_retry(lambda: super(FailoverRedis, self).execute_command(*args, **options),
                                           _nothing)  # fmt: skip


async def _nothing(error: Exception) -> None:
    """The failed try has cleaned up after itself."""


def _aware(base: type[AbstractConnection]) -> type[AbstractConnection]:
    return type(f"FailoverAware{base.__name__}", (FailoverAware, base), {})


def _options(manner: Manner) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_connect_timeout": manner.connect_timeout_seconds,
        "retry": Patience(manner),
        "retry_on_error": RETRY_ON,
    }
    if manner.read_timeout_seconds is not None:
        options["socket_timeout"] = manner.read_timeout_seconds
    if manner.health_check_seconds:
        options["health_check_interval"] = manner.health_check_seconds
    return options


def _through_sentinel(settings: Settings, manner: Manner) -> ArqRedis:
    address = sentinel.parse(settings.redis_url or "")
    sentinels = Sentinel(
        address.sentinels,
        sentinel_kwargs={
            "socket_connect_timeout": manner.connect_timeout_seconds,
            "socket_timeout": manner.connect_timeout_seconds,  # a sentinel answers at once or not at all
            "password": settings.redis_sentinel_password,
            "ssl": address.tls,
        },
    )
    managed = SentinelManagedSSLConnection if address.tls else SentinelManagedConnection
    client = sentinels.master_for(
        address.service, redis_class=FailoverRedis, connection_class=_aware(managed), db=address.db,
        username=address.username, password=address.password, **_options(manner),
    )  # fmt: skip
    return client  # type: ignore[no-any-return]


def client(settings: Settings, manner: Manner) -> ArqRedis:
    """A client of the primary, however REDIS_URL names it."""
    url = settings.redis_url or ""
    if sentinel.is_sentinel_url(url):
        return _through_sentinel(settings, manner)
    pool = ConnectionPool.from_url(url, **_options(manner))
    pool.connection_class = _aware(pool.connection_class)
    return FailoverRedis.from_pool(pool)


def prompt_client(settings: Settings, listening: bool = False) -> ArqRedis:
    """The hub's client; `listening` for the pub/sub connection of `hub.bus`."""
    return client(settings, LISTENING if listening else PROMPT)


def patient_client(settings: Settings) -> ArqRedis:
    """The worker's client (arq's pool and the jobs' commands)."""
    return client(settings, PATIENT)
