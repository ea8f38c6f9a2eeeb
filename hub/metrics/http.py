"""HTTP requests by route and status, with latency, counted around every request of the public port."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from hub.metrics import HTTP_DURATION, HTTP_REQUESTS
from hub.request import Handler

# Any other method is counted as OTHER: a label value must not be whatever a client sends.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# nginx's code for a request whose client went away before the answer.
CLIENT_GONE = 499


def route_of(request: web.Request) -> str:
    """The route's template (`/v1/jobs/{jobId}`), never the path itself (ids would make endless series)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def streamed(response: web.StreamResponse) -> bool:
    """A socket or an event stream: its time is the connection's life, not an answer's latency."""
    return isinstance(response, web.WebSocketResponse) or response.content_type == "text/event-stream"


@web.middleware
async def measured(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status, timed = 500, True
    try:
        response = await handler(request)
        status, timed = response.status, not streamed(response)
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status, timed = CLIENT_GONE, False
        raise
    finally:
        route, method = route_of(request), request.method if request.method in METHODS else "OTHER"
        HTTP_REQUESTS.labels(route, method, str(status)).inc()
        if timed:
            HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)
