"""What wraps every request: CORS for the allowed origins, the envelope for every failure, and the
headers that keep the page and every answer from being framed, sniffed or leaking its URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub import errors, logs
from hub.config import Settings
from hub.envelope import failure
from hub.errors import HubError
from hub.request import Handler, hub_of, listed_origin
from hub.source import SourceError, SourceUnavailable

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024
HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
LOG_CONTEXT = web.RequestKey("log_context", dict)


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


def security_headers(settings: Settings) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """A response-prepare hook rather than a middleware, so it reaches what middlewares never see whole:
    static files, socket upgrades and aiohttp's own errors. The page loads only its own scripts and
    styles (no inline script), only the portal and the webview (ALLOWED_ORIGINS) may frame it, and no
    URL leaves in a Referer (download links carry their signature in the query)."""
    ancestors = " ".join(["'self'", *settings.allowed_origins])
    policy = "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
        "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'",
        f"frame-ancestors {ancestors}",
    ])  # fmt: skip
    headers = {"Content-Security-Policy": policy, "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(headers)

    return add


@web.middleware
async def log_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Gives the request an id (the caller's `X-Request-ID`, when it is plain, or a new one), on every log
    line written while it is answered and on its answer, so an operator can follow one request."""
    request_id = logs.request_id(request.headers.get("X-Request-ID"))
    with logs.bound(requestId=request_id) as context:
        try:
            response = await handler(request)
        finally:
            request[LOG_CONTEXT] = context  # for the access log, written after the answer
        response.headers["X-Request-ID"] = request_id
        return response


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
    except web.HTTPException as exc:
        if not request.path.startswith("/v1") or exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "CLIENT_ERROR")
        return failure(api_id, HubError(exc.status, code, exc.reason or "The request cannot be served."))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        return failure(api_id, problem(request, exc))


def problem(request: web.Request, exc: Exception) -> HubError:
    """What a failure that no handler answered means to the caller, for both envelopes (`/v1` and the
    data-exhaust API's): a service that is away is a 503 with `Retry-After`, a source that cannot read its
    data is the contract's `SOURCE_ERROR`; only a failure of the hub's own is logged with its traceback."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return errors.REDIS_AWAY()
    if isinstance(exc, SourceUnavailable):
        log.warning("the source is away on %s %s: %s", request.method, request.path, exc)
        return errors.SOURCE_AWAY()
    if isinstance(exc, SourceError):
        log.error("the source failed on %s %s: %s", request.method, request.path, exc)
        return errors.SOURCE_ERROR()
    log.exception("unhandled error on %s %s", request.method, request.path)
    return errors.SERVER_ERROR()
