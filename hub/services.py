"""The services a request handler or a report job works with, built in one place each.

`Core` is what the hub and every worker share (the event log, jobs, the source, the storage), opened
and checked by `open_core`; `Hub` adds what only the web server needs. A wrong setting stops the process
in these builders, with one line naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, fields
from typing import Any

from arq.connections import ArqRedis
from redis.exceptions import RedisError, ResponseError

from hub.bus import Bus
from hub.config import (
    REDIS_TOO_OLD,
    REDIS_UNREACHABLE,
    SOURCE_UNREADABLE,
    STORAGE_UNUSABLE,
    ConfigError,
    Settings,
    require_writable,
)
from hub.connections import prompt_client
from hub.durability import warn_if_evicting
from hub.events import EventLog
from hub.identity import Tickets, TokenVerifier
from hub.limits import Connections, Limits
from hub.notifier import Notifier
from hub.readiness import Readiness
from hub.reports import Jobs
from hub.source import Source, SourceError, open_source
from hub.storage import Storage, StorageError
from hub.support import Support, open_support
from hub.telemetry import TelemetrySink


@dataclass
class Core:
    settings: Settings
    redis: ArqRedis
    events: EventLog
    jobs: Jobs
    source: Source
    storage: Storage
    notifier: Notifier | None  # the notification service's feed, when SUNBIRD_NOTIFICATION_URL is set

    def parts(self) -> dict[str, Any]:
        """The core's services by name, to build a larger set of services around them."""
        return {field.name: getattr(self, field.name) for field in fields(Core)}

    async def close(self) -> None:
        await self.source.close()
        if self.notifier is not None:
            await self.notifier.close()


@dataclass
class Hub(Core):
    bus: Bus
    tickets: Tickets
    verifier: TokenVerifier
    telemetry: TelemetrySink
    limits: Limits
    connections: Connections
    support: Support
    # Set once SIGTERM arrives: /readyz answers 503 and no new socket or stream is opened.
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    # Requests being answered (sockets and streams included), and an event set whenever there are none.
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    readiness: Readiness = field(default_factory=Readiness)  # /readyz's last checks, kept for a moment

    async def drain(self, grace_seconds: float) -> None:
        """A graceful stop: /readyz turns 503, no new socket is taken, the open ones are told to go
        (WebSocket 1001, streams end) so their clients resume from their last event id on another instance,
        and requests in flight are answered. Returns when all that is done, or when the grace period is over;
        the server keeps listening until then, so a load balancer sees the 503."""
        self.draining.set()
        self.bus.close_all()
        if self.in_flight:
            self.idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), grace_seconds)

    async def close(self) -> None:
        await self.verifier.close()
        await super().close()


async def connect(settings: Settings) -> ArqRedis:
    redis = prompt_client(settings)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        raise ConfigError(REDIS_UNREACHABLE.format(exc)) from None
    return redis


# XINFO STREAM's `entries-added`, which tells the event log whether a resuming client missed events, and
# the Lua scripts' commands are Redis 7's.
MIN_REDIS_VERSION = (7, 0)


async def require_redis_version(redis: ArqRedis) -> None:
    """Stops a process started on an older Redis at once, rather than at the first resuming client. A
    server that does not answer INFO (some managed ones rename it) is taken at its word."""
    try:
        version = str((await redis.info("server")).get("redis_version", ""))
    except ResponseError:
        return
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if numbers < MIN_REDIS_VERSION:
        raise ConfigError(REDIS_TOO_OLD.format(version or "of an unknown version"))


async def open_core(settings: Settings, redis: ArqRedis) -> Core:
    """The shared services, with Redis's version, the source and the storage each checked once."""
    await require_redis_version(redis)
    await warn_if_evicting(redis)
    source = open_source(settings.source_url, settings.source_timeout)
    try:
        await source.check()
    except SourceError as exc:
        raise ConfigError(SOURCE_UNREADABLE.format(exc)) from None
    storage = Storage(settings)
    try:
        await storage.check()
    except StorageError as exc:
        raise ConfigError(STORAGE_UNUSABLE.format(exc)) from None
    event_log = EventLog(redis, settings.event_retention, settings.records_kept_seconds)
    notifier = Notifier(settings, source, redis) if settings.notification_url else None
    jobs = Jobs(redis, event_log, settings, notifier)
    return Core(
        settings=settings, redis=redis, events=event_log, jobs=jobs, source=source, storage=storage, notifier=notifier
    )


async def open_hub(settings: Settings) -> Hub:
    require_writable(settings.telemetry_path, "TELEMETRY_PATH")
    redis = await connect(settings)
    core = await open_core(settings, redis)
    verifier = TokenVerifier(settings)
    await verifier.start()
    return Hub(
        **core.parts(),
        bus=Bus(prompt_client(settings, listening=True)),
        tickets=Tickets(redis),
        verifier=verifier,
        telemetry=TelemetrySink(settings),
        limits=Limits(redis, settings),
        connections=Connections(redis, settings),
        support=open_support(redis, settings, core.jobs.deadline_ms + settings.records_kept_seconds * 1000),
    )
