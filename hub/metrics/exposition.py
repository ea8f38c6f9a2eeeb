"""The Prometheus text of this process, on the public `/metrics` or on a port of its own (`METRICS_PORT`).

With METRICS_PORT set, metrics are served only there, by a small server beside the process's main work:
the hub's public port answers 404 on `/metrics`, and a worker (which has no public port) serves them at
all. Each process needs its own port: run one `hub worker` per container, or give each worker process on
one machine a METRICS_PORT of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from hub.config import ConfigError

Refresh = Callable[[], Awaitable[None]]


async def render(refresh: Refresh) -> web.Response:
    """The scrape: the gauges read now, then every series of the process."""
    await refresh()
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve(host: str, port: int, refresh: Refresh) -> web.AppRunner:
    """Serves `/metrics` alone on `host:port` until the returned runner is cleaned up."""
    app = web.Application()

    async def metrics(request: web.Request) -> web.Response:
        return await render(refresh)

    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"METRICS_PORT cannot be listened on ({host}:{port}): {exc.strerror or exc}") from None
    return runner
