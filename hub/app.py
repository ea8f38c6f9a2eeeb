"""The aiohttp application: the shared services every handler uses, and the middleware that turns any
failure into the contract's envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from arq.connections import ArqRedis, create_pool
from redis.exceptions import RedisError

from hub.bus import Bus
from hub.config import ConfigError, Settings
from hub.connections import redis_settings
from hub.envelope import HubError, failure
from hub.events import EventLog
from hub.identity import Principal, Tickets, TokenVerifier, bearer
from hub.limits import Limits
from hub.metrics import Metrics
from hub.reports import Jobs
from hub.source import Source, SourceError, open_source
from hub.storage import Storage
from hub.telemetry import TelemetrySink

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024
SWEEP_EVERY = 5.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Hub:
    settings: Settings
    redis: ArqRedis
    log: EventLog
    jobs: Jobs
    bus: Bus
    tickets: Tickets
    verifier: TokenVerifier
    source: Source
    storage: Storage
    telemetry: TelemetrySink
    metrics: Metrics
    limits: Limits


HUB = web.AppKey("hub", Hub)


def hub_of(request: web.Request) -> Hub:
    return request.app[HUB]


def principal(request: web.Request) -> Principal:
    return hub_of(request).verifier.verify(bearer(request.headers.get("Authorization")))


async def budgeted(request: web.Request, action: str) -> Principal:
    """The caller, once one request of theirs for `action` is taken from their budget (429 past it)."""
    who = principal(request)
    await hub_of(request).limits.take(who.user_id, action)
    return who


def api(api_id: str) -> Callable[[Handler], Handler]:
    """Names the envelope `id` of a handler's answers, errors included (see `envelope_errors`)."""

    def decorate(handler: Handler) -> Handler:
        handler.api_id = api_id  # type: ignore[attr-defined]
        return handler

    return decorate


def listed_origin(settings: Settings, origin: str | None) -> bool:
    """An origin named in ALLOWED_ORIGINS (or `*`): the portal's and the webview's pages."""
    return origin is not None and (origin.rstrip("/") in settings.allowed_origins or "*" in settings.allowed_origins)


def cross_origin(settings: Settings) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The portal and the webview call the hub from their own origin with a bearer token: listed origins
    get CORS headers (errors included, so they can read the envelope) and their preflights an answer."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not listed_origin(settings, origin):
            return await handler(request)
        preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        response = web.Response(status=204) if preflight else await handler(request)
        response.headers.update({
            "Access-Control-Allow-Origin": str(origin),
            "Access-Control-Allow-Headers": "Authorization, Content-Type, Last-Event-ID",
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        })  # fmt: skip
        return response

    return middleware


@web.middleware
async def envelope_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown routes, wrong methods, oversized bodies and crashes still answer in the envelope."""
    api_id = getattr(handler, "api_id", "api.hub")
    try:
        return await handler(request)
    except HubError as error:
        return failure(api_id, error)
    except web.HTTPRequestEntityTooLarge:
        return failure(api_id, HubError(400, "REQUEST_TOO_LARGE", f"The request body is over {MAX_BODY} bytes."))
    except web.HTTPException as exc:
        if not request.path.startswith("/v1") or exc.status < 400:
            raise
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status, "CLIENT_ERROR")
        return failure(api_id, HubError(exc.status, code, exc.reason or "The request cannot be served."))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return failure(api_id, HubError(500, "SERVER_ERROR", "Something went wrong on our side; please try again."))


async def _sweeper(hub: Hub) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY)
        try:
            await hub.jobs.sweep()
        except Exception:
            log.exception("sweeping stale jobs failed")


async def open_hub(settings: Settings) -> Hub:
    """The shared services, each checked once: a wrong setting stops the server here, with one line."""
    try:
        redis = await create_pool(redis_settings(settings.redis_url or ""))
    except (RedisError, OSError) as exc:
        raise ConfigError(f"REDIS_URL cannot be reached: {exc}") from None
    source = open_source(settings.source_url, settings.source_timeout)
    try:
        await source.check()
    except SourceError as exc:
        raise ConfigError(f"SOURCE_URL cannot be read: {exc}") from None
    storage = Storage(settings)
    event_log = EventLog(redis, settings.event_retention)
    return Hub(
        settings=settings,
        redis=redis,
        log=event_log,
        jobs=Jobs(redis, event_log, storage, settings.report_timeout, settings.max_tries),
        bus=Bus(redis),
        tickets=Tickets(redis),
        verifier=TokenVerifier(settings),
        source=source,
        storage=storage,
        telemetry=TelemetrySink(settings),
        metrics=Metrics(),
        limits=Limits(redis, settings.rate_limit),
    )


def create_app(settings: Settings) -> web.Application:
    from hub.routes import setup_routes

    app = web.Application(client_max_size=MAX_BODY, middlewares=[cross_origin(settings), envelope_errors])

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        hub = await open_hub(settings)
        app[HUB] = hub
        await hub.bus.start()
        await hub.telemetry.start()
        sweeper = asyncio.create_task(_sweeper(hub), name="hub-sweeper")
        yield
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await hub.telemetry.stop()
        await hub.bus.stop()
        await hub.source.close()
        await hub.redis.aclose()

    app.cleanup_ctx.append(lifecycle)
    setup_routes(app)
    return app
