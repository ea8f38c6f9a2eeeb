"""The `hub` command: serve, worker, dev, seed, token (also `python -m hub`).

This is the process entry point, and the one place in `hub/` that starts the worker from `jobs/`
(imported only by `hub worker` and `hub dev`); nothing else in `hub/` knows `jobs/` exists.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from redis.exceptions import RedisError

from hub import logs
from hub.app import create_app
from hub.config import (
    DEV_JWT_SECRET,
    REDIS_UNREACHABLE,
    ConfigError,
    Settings,
    load,
    require_redis,
    require_verifier,
    signs_with_public_keys,
)
from hub.embedded import embedded_redis
from hub.identity import mint_token
from hub.middlewares import LOG_CONTEXT
from hub.redact import redact
from hub.request import HUB
from hub.services import connect
from hub.source import Source, SourceError, open_source
from hub.source.seed import seed
from hub.source.sqlite import sqlite_path

log = logging.getLogger("hub")
DEMO_MENTOR = "8454cb21-3ce9-4e30-85b5-fade097880d8"
DEMO_BATCHES = (("01395324524466585601", "do_2139532444811919361", 2500),
                ("01395324524466585602", "do_2139532444811919362", 400))  # fmt: skip
# A demo batch with one participant row the source cannot decode: its report shows the failure path.
DEMO_BROKEN_BATCH = "01395324524466585699"


class AccessLogger(AbstractAccessLogger):
    """Logs the path without its query string: tickets and link signatures travel there."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %.3fs', request.remote, request.method, request.path, response.status, time,
                         extra=request.get(LOG_CONTEXT))  # fmt: skip


async def _serve(settings: Settings, drain_on_signals: bool = False) -> None:
    """Serves until cancelled or, with `drain_on_signals`, until SIGTERM or SIGINT: then it drains (see
    `Hub.drain`), stops listening, lets in-flight requests finish within DRAIN_GRACE, and returns, so the
    process exits 0."""
    app = create_app(settings)
    runner = web.AppRunner(app, access_log_class=AccessLogger, shutdown_timeout=settings.drain_grace_seconds)
    await runner.setup()
    stop = asyncio.Event()
    if drain_on_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, app[HUB].verifier.reload)
    try:
        try:
            await web.TCPSite(runner, settings.host, settings.port).start()
        except OSError as exc:
            raise ConfigError(f"HOST and PORT cannot be listened on ({settings.host}:{settings.port}): "
                              f"{exc.strerror or exc}") from None  # fmt: skip
        log.info("serving on %s:%s", settings.host, settings.port)
        await stop.wait()
        log.info("draining: sockets are told to go, requests in flight have %ss", settings.drain_grace_seconds)
        await app[HUB].drain(settings.drain_grace_seconds)
    finally:
        await runner.cleanup()


async def _work(settings: Settings) -> None:
    from jobs.worker import create_worker

    worker = create_worker(settings, handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    require_redis(settings)
    require_verifier(settings)
    asyncio.run(_serve(settings, drain_on_signals=True))


async def _reachable(settings: Settings) -> None:
    await (await connect(settings)).aclose()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    from jobs.worker import create_worker

    # At once, with the hub's prompt retries: the worker's patient ones are for a Redis that goes away later.
    asyncio.run(_reachable(settings))
    try:
        create_worker(settings).run()
    except (RedisError, OSError) as exc:
        raise ConfigError(REDIS_UNREACHABLE.format(exc)) from None


async def _seed_demo(settings: Settings) -> None:
    source = open_source(settings.source_url)
    try:
        for batch_id, course_id, participants in DEMO_BATCHES:
            if await _exists(source, batch_id):
                continue
            await seed(source, participants, batch_id=batch_id, course_id=course_id, mentor_id=DEMO_MENTOR)
        if settings.source_url.startswith("sqlite:") and not await _exists(source, DEMO_BROKEN_BATCH):
            await seed(source, 20, batch_id=DEMO_BROKEN_BATCH, course_id=DEMO_BATCHES[1][1], mentor_id=DEMO_MENTOR,
                       batch_name="Demo: a batch with an unreadable row (its report fails)")  # fmt: skip
            _break_a_row(settings.source_url, DEMO_BROKEN_BATCH)
    finally:
        await source.close()


def _break_a_row(source_url: str, batch_id: str) -> None:
    """Bytes that are not UTF-8 in one name: what a bad import into the source would leave behind."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(sqlite_path(source_url))) as conn, conn:
        conn.execute(
            "UPDATE users SET name = CAST(x'ff' AS TEXT) "
            "WHERE user_id = (SELECT user_id FROM enrolments WHERE batch_id = ? LIMIT 1)",
            (batch_id,),
        )


async def _exists(source: Source, batch_id: str) -> bool:
    try:
        return await source.batch(batch_id) is not None
    except SourceError:
        return False


@contextlib.contextmanager
def _redis_for_dev(settings: Settings) -> Iterator[Settings]:
    if settings.redis_url:
        yield settings
        return
    with embedded_redis() as url:
        yield settings.with_(redis_url=url)


def cmd_dev(args: argparse.Namespace, settings: Settings) -> None:
    # A terminal's Ctrl-C and a supervisor's SIGTERM both end here, so the embedded Valkey stops too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    if not os.environ.get("HOST", "").strip():
        settings = settings.with_(host="127.0.0.1", public_url=settings.public_url)
    if not (settings.jwt_secret or signs_with_public_keys(settings)):
        settings = settings.with_(jwt_secret=DEV_JWT_SECRET)
    # Server and worker share this process, so a link key of the moment serves them both.
    settings = settings.with_(link_secret=settings.link_secret or secrets.token_urlsafe(32))
    with _redis_for_dev(settings) as settings:
        asyncio.run(_seed_demo(settings))
        token = mint_token(DEMO_MENTOR, ["COURSE_MENTOR"], 24 * 3600, settings.jwt_secret)
        print(f"\nCourse report hub (dev) on {settings.public_url}  (Redis {redact(str(settings.redis_url))})")
        print(f"Open the dashboard:  {settings.public_url}/#token={token}")
        print(f"Development token for mentor {DEMO_MENTOR} (24 h):\n{token}\n", flush=True)

        async def both() -> None:
            # One process, one set of metrics: the server's port (or `/metrics`) has the worker's too.
            await asyncio.gather(_serve(settings), _work(settings.with_(metrics_port=None)))

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(both())


def cmd_seed(args: argparse.Namespace, settings: Settings) -> None:
    async def run() -> dict[str, Any]:
        source = open_source(settings.source_url)
        try:
            return await seed(source, args.participants, args.batch_id, args.course_id, args.mentor)
        finally:
            await source.close()

    print(orjson.dumps(asyncio.run(run())).decode())


def cmd_token(args: argparse.Namespace, settings: Settings) -> None:
    print(mint_token(args.user_id, args.role or ["COURSE_MENTOR"], args.ttl, settings.jwt_secret))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hub", description="DIKSHA course report hub")
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the web server (Procfile: web)").set_defaults(run=cmd_serve)
    commands.add_parser("worker", help="run the report worker (Procfile: worker)").set_defaults(run=cmd_worker)
    commands.add_parser("dev", help="embedded Valkey, demo data, server and worker in one process").set_defaults(
        run=cmd_dev
    )
    seed = commands.add_parser("seed", help="add a course, a batch and N participants to the source")
    seed.add_argument("--participants", type=int, required=True)
    seed.add_argument("--batch-id")
    seed.add_argument("--course-id")
    seed.add_argument("--mentor")
    seed.set_defaults(run=cmd_seed)
    token = commands.add_parser("token", help="print a development token signed with JWT_SECRET")
    token.add_argument("user_id")
    token.add_argument("--role", action="append")
    token.add_argument("--ttl", type=int, default=3600)
    token.set_defaults(run=cmd_token)
    return top


# Processes a machine runs log JSON; the commands people type log text.
MACHINE_COMMANDS = ("serve", "worker")


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logs.setup("json" if args.command in MACHINE_COMMANDS else "text")
    try:
        settings = load()
        if settings.log_format:
            logs.setup(settings.log_format)
        args.run(args, settings)
    except ConfigError as exc:
        print(f"hub {args.command}: {redact(str(exc))}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass
