"""What wraps every request: CORS for the allowed origins, and the envelope for every failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub import errors
from hub.config import Settings
from hub.envelope import failure
from hub.errors import HubError
from hub.request import Handler, hub_of, listed_origin

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024
HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


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
async def in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts requests being answered, so a draining hub knows when it may stop listening."""
    hub = hub_of(request)
    hub.in_flight += 1
    try:
        return await handler(request)
    finally:
        hub.in_flight -= 1
        if not hub.in_flight:
            hub.idle.set()


@web.middleware
async def envelope_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown routes, wrong methods, oversized bodies and crashes still answer in the envelope."""
    api_id = getattr(handler, "api_id", "api.hub")
    try:
        return await handler(request)
    except HubError as error:
        return failure(api_id, error)
    except web.HTTPRequestEntityTooLarge:
        return failure(api_id, errors.REQUEST_TOO_LARGE(limit=MAX_BODY_BYTES))
    except web.HTTPException as exc:
        if not request.path.startswith("/v1") or exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "CLIENT_ERROR")
        return failure(api_id, HubError(exc.status, code, exc.reason or "The request cannot be served."))
    except (RedisConnectionError, RedisTimeoutError):
        return failure(api_id, errors.REDIS_AWAY())
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return failure(api_id, errors.SERVER_ERROR())
