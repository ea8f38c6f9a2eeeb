"""What every handler asks of a request: the services, who is calling, their budget, whether their
origin is one we serve, and the envelope its answer goes out in.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from hub import errors, logs
from hub.config import Settings
from hub.envelope import respond
from hub.gateway import check_user_header, presented_token
from hub.identity import Principal
from hub.services import Hub

HUB = web.AppKey("hub", Hub)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Result = dict[str, Any]


def hub_of(request: web.Request) -> Hub:
    return request.app[HUB]


async def caller(request: web.Request) -> Principal:
    """The user of the token (the gateway's user header, else the bearer token); every `/v1` call but the
    sockets' (which use tickets) starts here."""
    who = await hub_of(request).verifier.verify(presented_token(request.headers))
    check_user_header(request.headers, who)
    logs.bind(userId=who.user_id)
    return who


async def budgeted(request: web.Request, action: str) -> Principal:
    """The caller, once one request of theirs for `action` is taken from their budget (429 past it)."""
    who = await caller(request)
    await hub_of(request).limits.take(who.user_id, action)
    return who


def api(api_id: str, status: int = 200) -> Callable[[Callable[[web.Request], Awaitable[Any]]], Handler]:
    """Names a handler's envelope `id`, once: a handler returns its `result` (or a response of its own,
    for sockets and files) and errors carry the same id (see `middlewares.envelope_errors`)."""

    def decorate(handler: Callable[[web.Request], Awaitable[Result | web.StreamResponse]]) -> Handler:
        @functools.wraps(handler)
        async def answer(request: web.Request) -> web.StreamResponse:
            result = await handler(request)
            return result if isinstance(result, web.StreamResponse) else respond(api_id, result, status)

        answer.api_id = api_id  # type: ignore[attr-defined]
        return answer

    return decorate


def listed_origin(settings: Settings, origin: str | None) -> bool:
    """An origin named in ALLOWED_ORIGINS (or `*`): the portal's and the webview's pages."""
    return origin is not None and (origin.rstrip("/") in settings.allowed_origins or "*" in settings.allowed_origins)


def check_socket_origin(request: web.Request) -> None:
    """Browsers always send Origin on a WebSocket; a page on another site must not ride the ticket. With no
    ALLOWED_ORIGINS, only pages the hub serves itself may open one."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    settings = hub_of(request).settings
    try:
        same_host = urlparse(origin).netloc == request.host
    except ValueError:  # `http://[` and the like: no page has that origin
        same_host = False
    if not (listed_origin(settings, origin) or (not settings.allowed_origins and same_host)):
        raise errors.ORIGIN_NOT_ALLOWED(origin=origin)
