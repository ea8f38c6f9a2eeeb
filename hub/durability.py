"""What keeps an acknowledged click or a job's end through a failover, and what warns when Redis may drop it.

Replication is asynchronous: a primary that dies right after a write may take it along, and the replica
promoted in its place never heard of the job the mentor was told about. With `REDIS_WAIT_REPLICAS` set, a
submit and a job's ending are followed by `WAIT` for that many replicas, at most `REDIS_WAIT_TIMEOUT` ms.
`WAIT` counts the writes of the connection it is sent on, so it travels in one pipeline with the script
whose writes it guards (a `WAIT` on another pooled connection would return at once, guarding nothing).
A wait that times out raises `NotDurable`, a connection error: the hub answers 503 (try again) rather than
acknowledge what a failover may take back, as Redis's own `min-replicas-to-write` would.

Every hub key has a TTL, so an evicting `maxmemory-policy` (`volatile-lru`, Azure's default) could drop
guards and job records under memory pressure; the hub and the worker say so at start.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, NoScriptError, ResponseError

from hub.config import Settings

log = logging.getLogger(__name__)


class NotDurable(ConnectionError):
    """Fewer replicas than REDIS_WAIT_REPLICAS acknowledged a write in time: it may not survive a failover.
    The write did happen on the primary: `answer` is what the script answered, for a caller that must
    finish what it started (a job made must be queued, or it would wait for a worker that never comes)."""

    def __init__(self, message: str, answer: Any) -> None:
        super().__init__(message)
        self.answer = answer


class Durable:
    """A script whose answer is returned once `replicas` replicas hold its writes (`NotDurable` if they do not
    within `timeout_ms`). Called like the script: `await durable_script(keys=[...], args=[...])`."""

    def __init__(self, script: AsyncScript, replicas: int, timeout_ms: int) -> None:
        self._script = script
        self._replicas = replicas
        self._timeout_ms = timeout_ms

    async def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        if not self._replicas:
            return await self._script(keys=keys, args=args)
        try:
            answer, acknowledged = await self._run_and_wait(keys, args)
        except NoScriptError:
            # A pipeline sent again after a failover reaches a primary that has not seen the script; it did
            # not run there, so it may be sent once more.
            await self._script.registered_client.script_load(self._script.script)
            answer, acknowledged = await self._run_and_wait(keys, args)
        if acknowledged < self._replicas:
            raise NotDurable(f"{acknowledged} of REDIS_WAIT_REPLICAS={self._replicas} replicas acknowledged a "
                             f"write within REDIS_WAIT_TIMEOUT={self._timeout_ms} ms", answer)  # fmt: skip
        return answer

    async def _run_and_wait(self, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, int]:
        async with self._script.registered_client.pipeline(transaction=False) as pipe:
            await self._script(keys=keys, args=args, client=pipe)
            pipe.wait(self._replicas, self._timeout_ms)
            answer, acknowledged = await pipe.execute()
        return answer, int(acknowledged)


def durable(script: AsyncScript, settings: Settings) -> Durable:
    """`script`, waiting for the replicas REDIS_WAIT_REPLICAS names after each call."""
    return Durable(script, settings.redis_wait_replicas, settings.redis_wait_timeout_ms)


async def warn_if_evicting(redis: Any) -> None:
    """Logs a warning unless Redis keeps every key until it expires (`maxmemory-policy noeviction`)."""
    try:
        found = await redis.config_get("maxmemory-policy")
    except ResponseError as exc:  # managed caches disable or rename CONFIG
        log.warning("maxmemory-policy cannot be read (CONFIG is not allowed here: %s); make sure it is "
                    "noeviction, or Redis may drop job records and guards under memory pressure", exc)  # fmt: skip
        return
    policy = {_text(name): _text(value) for name, value in found.items()}.get("maxmemory-policy", "")
    if policy != "noeviction":
        log.warning("maxmemory-policy is %r: under memory pressure Redis may drop job records and guards; "
                    "set maxmemory-policy noeviction", policy)  # fmt: skip


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
