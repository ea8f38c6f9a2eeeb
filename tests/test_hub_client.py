"""`hub-client.js` as the portal and the app use it, in Debian's Chromium against a live hub, arq worker
and Valkey: tokens that expire and are refreshed, gateway mode behind a proxy that adds the token, a
socket that dies without closing, polling that slows down when hidden, Cordova's pause and resume, the
app's download hook, and one ending per job whatever the event log holds. A harness page
(`client_harness.html`) loads the client as an ES module and records what it emits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Page

from hub.app import create_app
from hub.config import Settings
from hub.embedded import free_port
from hub.events import EventLog, draft
from tests.helpers import MENTOR, Call, SilentProxy, next_event, running_worker

BATCH = "batch-0001"
SUBMIT = "/v1/reports/course-progress"
HARNESS = (Path(__file__).parent / "client_harness.html").read_text()
WEB = Path(__file__).resolve().parents[1] / "web"
HEARTBEAT_SECONDS = 1.0
SILENT_HEARTBEATS = 2.5  # the client's default
SOCKET_OPENING = b"GET /v1/notifications/ws"


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """A heartbeat a second, so a dead socket shows within seconds."""
    return {**env, "HEARTBEAT_INTERVAL": str(HEARTBEAT_SECONDS)}


def gaps(times: list[float]) -> list[float]:
    """Milliseconds between successive instants."""
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def origin_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def open_harness(context: BrowserContext) -> Callable[..., Any]:
    """Opens the harness page as if served from `origin`, importing the client from `client_url`."""

    async def open_at(origin: str, client_url: str = "/web/hub-client.js") -> Page:
        page = await context.new_page()
        url = f"{origin}/client-harness.html"
        body = HARNESS.replace("__CLIENT__", client_url)
        await page.route(url, lambda route: route.fulfill(body=body, content_type="text/html"))
        await page.goto(url)
        await page.wait_for_function("() => window.harnessReady === true")
        return page

    return open_at


async def start_client(page: Page, tokens: list[str] | None, **options: Any) -> None:
    await page.evaluate("(given) => startClient(given)", {"tokens": tokens, "options": options})
    await page.wait_for_function("() => client.state === 'open'")


async def wait_for_event(page: Page, event_type: str) -> dict[str, Any]:
    await page.wait_for_function("(type) => events.some((e) => e.type === type)", arg=event_type)
    return await page.evaluate("(type) => events.find((e) => e.type === type)", event_type)


async def logged_ids(call: Call) -> list[str]:
    """Every event id in the mentor's log, oldest first, as the hub keeps them."""
    status, envelope = await call("GET", "/v1/notifications")
    assert status == 200
    return [event["id"] for event in envelope["result"]["events"]]


async def shown_ids(page: Page) -> list[str]:
    return await page.evaluate("() => events.map((e) => e.id)")


# ---- tokens --------------------------------------------------------------------------------------


async def test_a_token_that_expires_mid_connection_is_refreshed_once_and_no_event_is_lost(
    open_harness, hub: TestServer, token, call: Call, settings: Settings
) -> None:
    page = await open_harness(origin_of(hub))
    await start_client(page, [token(ttl=3), token()])
    status, _ = await call("POST", SUBMIT, json={"batchId": BATCH})
    assert status == 202
    await wait_for_event(page, "report.submitted")

    # The hub closes the socket with 4001 as the first token expires; the client asks for a fresh one.
    await page.wait_for_function("() => tokenAsks.length === 2 && client.state === 'open'")
    async with running_worker(settings):
        await wait_for_event(page, "report.completed")

    assert await page.evaluate("() => tokenAsks") == [False, True]
    assert await page.evaluate("() => unauthorized") is None
    assert await shown_ids(page) == await logged_ids(call)


async def test_a_token_refused_again_after_a_fresh_one_stops_the_client_as_unauthorized(
    open_harness, hub: TestServer
) -> None:
    page = await open_harness(origin_of(hub))
    await page.evaluate("() => startClient({ tokens: ['not-a-token'], options: {} })")
    await page.wait_for_function("() => unauthorized !== null")
    assert await page.evaluate("() => tokenAsks") == [False, True]
    assert await page.evaluate("() => client.state") == "closed"


# ---- gateway mode --------------------------------------------------------------------------------


@pytest.fixture
async def gateway_hub(settings: Settings, hub: TestServer) -> AsyncIterator[tuple[TestServer, str]]:
    """A hub that lets the portal's pages open sockets (ALLOWED_ORIGINS), and the portal's origin."""
    portal_origin = f"http://127.0.0.1:{free_port()}"
    allowing = settings.with_(allowed_origins=(portal_origin,), port=free_port())
    server = TestServer(create_app(allowing), host="127.0.0.1", port=allowing.port)
    await server.start_server()
    yield server, portal_origin
    await server.close()


@pytest.fixture
async def portal(
    gateway_hub: tuple[TestServer, str], token, context: BrowserContext
) -> AsyncIterator[list[dict[str, str]]]:
    """The portal as DIKSHA runs it: its bundle of the client, and a proxy under /report-hub/ that adds
    the token of the user whose session cookie comes with the call (the browser holds no token) and cannot
    upgrade a socket. Yields the headers of every call the browser made to the proxy."""
    hub_server, portal_origin = gateway_hub
    seen: list[dict[str, str]] = []
    sessions = {"portal-session-1": token()}
    await context.add_cookies([{"name": "connect.sid", "value": "portal-session-1", "url": portal_origin}])

    async def forward(request: web.Request) -> web.Response:
        seen.append({"path": request.path, **request.headers})
        user_token = sessions.get(request.cookies.get("connect.sid", ""))
        if user_token is None:
            return web.json_response({"params": {"status": "failed", "err": "UNAUTHORIZED"}}, status=401)
        # DIKSHA's portal sends the user's token in x-authenticated-user-token (and Kong's key as
        # Authorization); here Authorization carries the user's token too, for a hub without gateway mode.
        headers = {
            "x-authenticated-user-token": user_token,
            "Authorization": f"Bearer {user_token}",
            "Accept": "application/json",
        }
        if request.content_type == "application/json":
            headers["Content-Type"] = "application/json"
        target = f"{origin_of(hub_server)}/{request.match_info['tail']}"
        body = await request.read()
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, target, params=request.query, headers=headers, data=body) as answer,
        ):
            return web.Response(status=answer.status, body=await answer.read(), content_type=answer.content_type)

    async def bundle(_: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB / "hub-client.js", headers={"Content-Type": "text/javascript"})

    app = web.Application()
    app.router.add_route("*", "/report-hub/{tail:.*}", forward)
    app.router.add_get("/bundle/hub-client.js", bundle)
    server = TestServer(app, host="127.0.0.1", port=int(portal_origin.rsplit(":", 1)[1]))
    await server.start_server()
    yield seen
    await server.close()


async def test_gateway_mode_calls_through_the_portals_proxy_and_streams_straight_from_the_hub(
    open_harness, gateway_hub: tuple[TestServer, str], portal: list[dict[str, str]], call: Call, settings: Settings
) -> None:
    hub_server, portal_origin = gateway_hub
    page = await open_harness(portal_origin, "/bundle/hub-client.js")
    await start_client(page, None, baseUrl="/report-hub", streamUrl=origin_of(hub_server), userId=MENTOR)
    status, _ = await call("POST", SUBMIT, json={"batchId": BATCH})
    assert status == 202
    async with running_worker(settings):
        ready = await wait_for_event(page, "report.completed")

    assert ready["batchId"] == BATCH
    assert await shown_ids(page) == await logged_ids(call)
    assert "/report-hub/v1/notifications/ticket" in {headers["path"] for headers in portal}
    assert not [headers for headers in portal if "Authorization" in headers], "the browser sent a token"


# ---- networks ------------------------------------------------------------------------------------


async def test_a_quiet_socket_and_stream_get_heartbeat_frames_javascript_can_see(
    http: aiohttp.ClientSession, socket_url, token
) -> None:
    heartbeat = {"type": "heartbeat"}
    async with http.ws_connect(await socket_url()) as ws, asyncio.timeout(HEARTBEAT_SECONDS * 3):
        assert [await ws.receive_json(), await ws.receive_json()] == [heartbeat, heartbeat]

    headers = {"Authorization": f"Bearer {token()}"}
    async with http.get("/v1/notifications/stream", headers=headers) as stream, asyncio.timeout(HEARTBEAT_SECONDS * 3):
        data = []
        while len(data) < 2:
            line = (await stream.content.readline()).decode()
            if line.startswith("data: "):  # what EventSource hands to JavaScript (a `:` comment is not)
                data.append(json.loads(line[6:]))
    assert data == [heartbeat, heartbeat]


@pytest.fixture
async def silent_proxy(hub: TestServer) -> AsyncIterator[SilentProxy]:
    proxy = SilentProxy(hub.port)
    await proxy.start()
    yield proxy
    await proxy.close()


async def test_a_socket_that_goes_silent_without_closing_is_replaced_within_the_set_silence(
    open_harness, silent_proxy: SilentProxy, token, call: Call, settings: Settings
) -> None:
    page = await open_harness(f"http://127.0.0.1:{silent_proxy.port}")
    await start_client(page, [token()], transports=["ws"])

    silent_proxy.go_silent(SOCKET_OPENING)  # as a phone moving from Wi-Fi to mobile data leaves it
    went_silent = time.monotonic()
    await page.wait_for_function("() => client.state !== 'open'")
    noticed_after = time.monotonic() - went_silent
    assert noticed_after < HEARTBEAT_SECONDS * SILENT_HEARTBEATS + 2, f"noticed after {noticed_after:.1f} s"

    await page.wait_for_function("() => client.state === 'open'")
    status, _ = await call("POST", SUBMIT, json={"batchId": BATCH})
    assert status == 202
    async with running_worker(settings):
        await wait_for_event(page, "report.completed")
    assert await shown_ids(page) == await logged_ids(call)


async def test_a_hidden_page_polls_slowly_and_a_visible_one_at_once_and_at_its_pace(
    open_harness, hub: TestServer, token
) -> None:
    page = await open_harness(origin_of(hub))
    await start_client(page, [token()], transports=["poll"], pollIntervalMs=200, hiddenPollIntervalMs=2500)
    await page.wait_for_function("() => polls.length >= 3")
    await page.evaluate("() => { window.hiddenAt = performance.now(); window.atHide = polls.length; }")
    await page.evaluate("() => setVisibility('hidden')")
    await page.wait_for_function("() => polls.length >= atHide + 2")
    await page.evaluate("() => { window.shownAt = performance.now(); window.atShow = polls.length; }")
    await page.evaluate("() => setVisibility('visible')")
    await page.wait_for_function("() => polls.length >= atShow + 2")

    visible = gaps(await page.evaluate("() => polls.slice(0, atHide)"))
    hidden = gaps(await page.evaluate("() => [hiddenAt].concat(polls.slice(atHide, atHide + 2))"))
    shown = gaps(await page.evaluate("() => [shownAt].concat(polls.slice(atShow, atShow + 2))"))
    # Fast means the set 200 ms plus a request's time on a busy machine; slow is the set 2.5 s at least.
    assert all(gap < 1500 for gap in visible), visible
    assert all(gap >= 2400 for gap in hidden), hidden
    assert all(gap < 1500 for gap in shown), shown


# ---- the app -------------------------------------------------------------------------------------


async def test_pause_closes_the_connection_and_resume_catches_up_from_the_last_event_id(
    open_harness, hub: TestServer, token, call: Call, settings: Settings, http, socket_url
) -> None:
    page = await open_harness(origin_of(hub))
    await start_client(page, [token()])
    async with http.ws_connect(await socket_url()) as watcher:
        status, _ = await call("POST", SUBMIT, json={"batchId": BATCH})
        assert status == 202
        await wait_for_event(page, "report.submitted")

        await page.evaluate("() => client.pause()")  # Cordova's `pause`: the app went to the background
        assert await page.evaluate("() => client.state") == "paused"
        async with running_worker(settings):
            ready = await next_event(watcher, "report.completed")
        assert ready["id"] not in await shown_ids(page)

    await page.evaluate("() => client.resume()")
    await wait_for_event(page, "report.completed")
    assert await shown_ids(page) == await logged_ids(call)


async def test_download_hands_the_link_and_file_name_to_on_download_and_a_fresh_link_for_an_old_one(
    open_harness, hub: TestServer, token, call: Call, settings: Settings, http: aiohttp.ClientSession
) -> None:
    page = await open_harness(origin_of(hub))
    await start_client(page, [token()])
    await call("POST", SUBMIT, json={"batchId": BATCH})
    async with running_worker(settings):
        ready = await wait_for_event(page, "report.completed")

    job_reads: list[str] = []
    page.on("request", lambda request: "/v1/reports/jobs/" in request.url and job_reads.append(request.url))
    await page.evaluate("(event) => client.download(event)", ready)
    assert job_reads == [], "a link that is still good is used as it is"
    expired = {**ready, "expiresAt": "2000-01-01T00:00:00Z"}
    await page.evaluate("(event) => client.download(event)", expired)
    assert [url.rsplit("/", 1)[1] for url in job_reads] == [ready["jobId"]], "an old link is read afresh"

    given, refreshed = await page.evaluate("() => downloads")
    assert given == {"url": ready["downloadUrl"], "fileName": ready["fileName"]}
    assert refreshed["fileName"] == ready["fileName"]
    async with http.get(refreshed["url"]) as response:
        assert response.status == 200
        assert (await response.read()).startswith(b"\xef\xbb\xbf")


# ---- one ending per job --------------------------------------------------------------------------


async def test_the_client_emits_one_ending_per_job_whatever_the_log_holds(
    open_harness, hub: TestServer, token, call: Call, settings: Settings, event_log: EventLog
) -> None:
    page = await open_harness(origin_of(hub))
    await start_client(page, [token()])
    await call("POST", SUBMIT, json={"batchId": BATCH})
    async with running_worker(settings):
        ready = await wait_for_event(page, "report.completed")

    job = ready["jobId"]
    # What a failover can leave: a failure of the same job, and its completion stored again.
    await event_log.emit(MENTOR, job, draft("report.failed", job, BATCH, reason="REPORT_TIMEOUT"))
    await event_log.emit(MENTOR, job, draft("report.completed", job, BATCH, downloadUrl=ready["downloadUrl"]))
    marker = await event_log.emit(MENTOR, job, draft("report.duplicate", job, BATCH))
    await page.wait_for_function("(id) => client.lastEventId === id", arg=marker)

    endings = await page.evaluate(
        "() => events.filter((e) => e.type === 'report.completed' || e.type === 'report.failed').map((e) => e.id)"
    )
    assert endings == [ready["id"]]
    assert (await shown_ids(page))[-1] == marker


async def test_an_ending_support_replays_is_emitted_again(
    open_harness, hub: TestServer, token, call: Call, settings: Settings
) -> None:
    page = await open_harness(origin_of(hub))
    await start_client(page, [token()])
    _, submitted = await call("POST", SUBMIT, json={"batchId": BATCH})
    async with running_worker(settings):
        ready = await wait_for_event(page, "report.completed")

    support = {"Authorization": f"Bearer {token('support-1', 'SUPPORT')}"}
    job = submitted["result"]["jobId"]
    status, _ = await call("POST", f"/v1/support/jobs/{job}/replay", user=None, headers=support)
    assert status == 200
    await page.wait_for_function("() => events.some((e) => e.replayed)")
    endings = await page.evaluate("() => events.filter((e) => e.type === 'report.completed')")
    assert endings[0]["id"] == ready["id"]
    assert [e.get("replayed") for e in endings] == [None, True]
