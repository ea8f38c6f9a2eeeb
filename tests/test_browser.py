"""The dashboard page in a real browser (Debian's Chromium driven by Playwright) against a real hub,
arq worker and Valkey: the toasts a mentor sees, the file they save, the telemetry of their click, and
the page at desktop and phone width (screenshots land in `artifacts/`); and the support console beside it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from arq.worker import Worker
from playwright.async_api import BrowserContext, Page, expect
from redis.asyncio import Redis

from hub import events, keys
from hub.config import Settings
from hub.events import EventLog
from hub.i18n import CATALOGUE
from tests.helpers import BROWSER_WAIT_MS, MENTOR, SUPPORT, Call, next_event, running_worker
from tests.nginx import nginx_in_front

BATCH = "batch-0001"
COURSE = "do_course_0001"
READY_MESSAGE = "Your download is ready."
FAILED_MESSAGE = "Download has failed. Please try again after sometime"
IN_PROGRESS_MESSAGE = "Download in-progress. Please try after sometime"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WAIT_MS = BROWSER_WAIT_MS
CLICK_THROUGH_PROXY = """async () => (await fetch('/report-hub-api/v1/reports/course-progress', {
  method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({batchId: 'batch-0001'}),
})).status"""
READY = '.toast[data-event-type="report.completed"]'
ENDING = '.toast:is([data-event-type="report.completed"], [data-event-type="report.failed"])'

expect.set_options(timeout=WAIT_MS)


@pytest.fixture
def open_dashboard(context: BrowserContext, hub: TestServer, token: Callable[..., str]) -> Callable[..., Any]:
    """Opens the page signed in as MENTOR, with the batch's figures shown and the live feed open."""

    async def open_page() -> Page:
        page = await context.new_page()
        await page.goto(f"{hub.make_url('/')}#token={token()}")
        await expect(page.locator("#batch-select")).to_have_value(BATCH)
        await expect(page.locator("#stat-enrolled")).to_have_text("120")
        # Live, so a click's events arrive as they happen rather than on the next reconnect.
        await page.wait_for_function("() => window.hubApp.client?.state === 'open'")
        return page

    return open_page


@pytest.fixture
def broken_row(settings: Settings, batch) -> None:
    """A participant whose name is not valid UTF-8: the worker cannot read that row."""
    with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE users SET name = CAST(x'ff' AS TEXT) WHERE user_id IN (SELECT user_id FROM users LIMIT 1)")


def today_names() -> set[str]:
    """The file is named for the day (UTC) the job was submitted; a run across midnight sees either."""
    return {f"{BATCH}_progress_{datetime.now(UTC):%Y%m%d}.csv"}


def sink_events(settings: Settings) -> list[dict[str, Any]]:
    """What the telemetry sink (a JSON-lines file) holds."""
    sink = Path(settings.telemetry_path)
    return [json.loads(line) for line in sink.read_text().splitlines()] if sink.exists() else []


async def client_caught_up(page: Page, event_id: str) -> None:
    """Waits until the page's own connection has delivered `event_id`: anything that would repeat it is in."""
    await page.wait_for_function("(id) => window.hubApp.client.lastEventId === id", arg=event_id)


# ---- the report ----------------------------------------------------------------------------------


async def test_clicking_download_shows_the_ready_toast_and_saves_the_csv_with_its_name_and_rows(
    open_dashboard, worker: Worker, tmp_path: Path
) -> None:
    names = today_names()
    page = await open_dashboard()
    await page.click("#download-report")
    toast = page.locator(READY)
    await expect(toast).to_have_count(1)
    await expect(toast).to_contain_text(READY_MESSAGE)
    names |= today_names()

    async with page.expect_download() as download_info:
        await toast.get_by_role("link", name="Save file").click()
    download = await download_info.value
    assert download.suggested_filename in names
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)

    content = saved.read_bytes()
    assert content.startswith(b"\xef\xbb\xbf"), "the CSV starts with a byte-order mark for Excel"
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows[0][:6] == ["Collection Id", "Collection Name", "Batch Id", "Batch Name", "User UUID", "User Name"]
    assert len(rows) == 1 + 120
    assert {row[2] for row in rows[1:]} == {BATCH}


async def test_a_second_click_while_the_report_is_made_shows_the_in_progress_toast(open_dashboard) -> None:
    # No worker: the first job stays SUBMITTED.
    page = await open_dashboard()
    await page.click("#download-report")
    await expect(page.locator("#report-progress")).to_be_visible()

    await page.click("#download-report")
    duplicate = page.locator('.toast[data-event-type="report.duplicate"]')
    # The 409 answer and the report.duplicate event describe one click: one toast, the event's.
    await expect(page.locator('.toast[data-event-type="report.duplicate"][data-event-id]')).to_have_count(1)
    await expect(duplicate).to_have_count(1)
    await expect(duplicate).to_contain_text(IN_PROGRESS_MESSAGE)
    await expect(page.locator(READY)).to_have_count(0)


async def test_a_failing_job_shows_the_failure_toast(open_dashboard, broken_row: None, worker: Worker) -> None:
    page = await open_dashboard()
    await page.click("#download-report")
    failed = page.locator('.toast[data-event-type="report.failed"]')
    await expect(failed).to_have_count(1)
    await expect(failed).to_contain_text(FAILED_MESSAGE)
    await expect(failed).to_have_attribute("role", "alert")
    await expect(page.locator("#report-progress")).to_be_hidden()
    await expect(page.locator(READY)).to_have_count(0)


async def test_a_page_offline_while_the_report_is_made_shows_the_ready_toast_once_it_is_back(
    open_dashboard, context: BrowserContext, settings: Settings, http, socket_url
) -> None:
    page = await open_dashboard()
    async with http.ws_connect(await socket_url()) as watcher:
        await page.click("#download-report")
        # The page has its resume point once it heard "started"; the next test covers a page without one.
        await expect(page.locator('.toast[data-event-type="report.submitted"]')).to_have_count(1)

        # Chromium's offline emulation leaves an open socket alone: the client itself hears `offline`.
        await context.set_offline(True)
        await page.wait_for_function("() => window.hubApp.client.state === 'offline'")
        async with running_worker(settings):
            ready = await next_event(watcher, "report.completed")
        # The page really missed it: no connection, no toast, until the network is back.
        assert await page.evaluate("() => window.hubApp.client.state") != "open"
        await expect(page.locator(READY)).to_have_count(0)

    await context.set_offline(False)
    toast = page.locator(READY)
    await expect(toast).to_have_count(1)
    await expect(toast).to_have_attribute("data-event-id", ready["id"])
    await client_caught_up(page, ready["id"])
    await page.wait_for_function("() => window.hubApp.client.state === 'open'")
    await expect(toast).to_have_count(1)


async def test_a_page_that_heard_no_event_yet_still_gets_those_made_while_its_network_was_down(
    open_dashboard, context: BrowserContext, settings: Settings, call: Call, http, socket_url
) -> None:
    """The mentor asks from another device while this fresh page is cut off: it must not lose the news."""
    page = await open_dashboard()
    await context.set_offline(True)
    await page.wait_for_function("() => window.hubApp.client.state === 'offline'")
    async with http.ws_connect(await socket_url()) as watcher, running_worker(settings):
        status, _ = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        assert status == 202
        ready = await next_event(watcher, "report.completed")

    await context.set_offline(False)
    toast = page.locator(READY)
    await expect(toast).to_have_count(1)
    await expect(toast).to_have_attribute("data-event-id", ready["id"])
    await client_caught_up(page, ready["id"])
    await expect(toast).to_have_count(1)


async def test_two_tabs_of_the_mentor_each_show_the_ready_toast_once(open_dashboard, worker: Worker) -> None:
    first = await open_dashboard()
    second = await open_dashboard()
    await first.click("#download-report")
    for page in (first, second):
        await expect(page.locator(READY)).to_have_count(1)
    event_id = await first.locator(READY).get_attribute("data-event-id")
    assert event_id
    for page in (first, second):
        # Each tab hears the event on its own socket and from the other tab: it still shows it once.
        await client_caught_up(page, event_id)
        await expect(page.locator(READY)).to_have_count(1)
        await expect(page.locator(READY)).to_have_attribute("data-event-id", event_id)


async def test_a_job_shows_one_ending_toast_whatever_the_event_log_holds(
    open_dashboard, worker: Worker, event_log: EventLog
) -> None:
    page = await open_dashboard()
    await page.click("#download-report")
    await expect(page.locator(READY)).to_have_count(1)
    ready_id = await page.locator(READY).get_attribute("data-event-id")
    job = await page.locator(READY).get_attribute("data-job-id")
    assert ready_id and job

    # What a failover can leave in the log: a failure of the same job, and its completion stored again.
    await event_log.emit(MENTOR, job, events.draft("report.failed", job, BATCH, reason="REPORT_TIMEOUT"))
    await event_log.emit(MENTOR, job, events.draft("report.completed", job, BATCH, downloadUrl="/files/x"))
    marker = await event_log.emit(MENTOR, job, events.draft("report.duplicate", job, BATCH))
    await client_caught_up(page, marker)
    await expect(page.locator('.toast[data-event-type="report.duplicate"]')).to_have_count(1)

    endings = page.locator(f'{ENDING}[data-job-id="{job}"]')
    await expect(endings).to_have_count(1)
    await expect(endings).to_have_attribute("data-event-id", ready_id)


# ---- telemetry -----------------------------------------------------------------------------------


async def test_the_download_click_reaches_the_telemetry_sink_as_an_interact_event(
    open_dashboard, settings: Settings
) -> None:
    page = await open_dashboard()
    async with page.expect_response(lambda r: r.url.endswith("/v1/telemetry") and r.request.method == "POST") as sent:
        await page.click("#download-report")
    assert (await sent.value).status == 200

    interacts = [e for e in sink_events(settings) if e["eid"] == "INTERACT"]
    assert len(interacts) == 1
    event = interacts[0]
    # The portal's on-demand reports click, field for field, so DIKSHA's dashboards count it.
    assert event["edata"] == {
        **event["edata"],
        "type": "click",
        "id": "progress-exhaust",
        "pageid": "on-demand-reports",
    }
    assert event["context"]["env"] == "reports"
    assert event["context"]["cdata"] == [{"id": COURSE, "type": "Course"}, {"id": BATCH, "type": "Batch"}]
    assert event["object"]["id"] == BATCH
    assert event["actor"]["id"] == MENTOR
    assert event["mid"]


# ---- layout --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "width", "height"), [("desktop", 1280, 800), ("phone", 360, 740)], ids=["desktop", "phone"]
)
async def test_the_dashboard_renders_without_horizontal_scroll_and_is_saved_as_a_screenshot(
    open_dashboard, worker: Worker, name: str, width: int, height: int
) -> None:
    page = await open_dashboard()
    await page.set_viewport_size({"width": width, "height": height})
    # A finished report fills every part of the page: toast, job row with its link, long file name.
    await page.click("#download-report")
    await expect(page.locator(READY)).to_have_count(1)
    await expect(page.locator('#jobs-list .job[data-status="SUCCESS"]')).to_have_count(1)

    await expect(page.locator("#summary .stat")).to_have_count(6)
    for stat in await page.locator("#summary .stat").all():
        await expect(stat).to_be_visible()
    await expect(page.locator("#histogram .histogram__bucket")).to_have_count(10)
    await expect(page.locator("#histogram")).to_be_visible()
    await expect(page.locator("#download-report")).to_be_visible()
    scroll_width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page scrolls sideways at {width}px ({scroll_width}px wide)"

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"dashboard-{name}.png", full_page=True)


async def test_a_page_in_hindi_shows_its_labels_and_toasts_in_hindi(context, hub: TestServer, token) -> None:
    page = await context.new_page()
    await page.goto(f"{hub.make_url('/?lang=hi')}#token={token()}")
    await page.wait_for_function("() => window.hubApp.client?.state === 'open'")
    await expect(page.locator("#download-report")).to_have_text(CATALOGUE["hi"]["page.downloadReport"])
    await page.click("#download-report")
    await expect(page.locator("#report-progress")).to_be_visible()
    await page.click("#download-report")  # no worker: the first job is still running
    duplicate = page.locator('.toast[data-event-type="report.duplicate"][data-event-id]')
    await expect(duplicate).to_contain_text(CATALOGUE["hi"]["messages.imsg.m0040"])


async def test_behind_the_portal_the_client_calls_its_proxy_and_hears_over_a_socket_through_nginx(
    context, hub: TestServer, tmp_path: Path, token
) -> None:
    async with nginx_in_front(hub.port, tmp_path / "nginx", portal=True) as base:
        await context.add_cookies([{"name": "session_token", "value": token(), "url": base}])
        page = await context.new_page()
        await page.goto(f"{base}/portal/")
        await page.wait_for_function("() => window.client?.state === 'open'")
        # The portal page's click: to its proxy, with no token of its own.
        status = await page.evaluate(CLICK_THROUGH_PROXY)
        await page.wait_for_function("() => window.heard.some((event) => event.type === 'report.submitted')")
        heard = await page.evaluate("() => window.heard.find((event) => event.type === 'report.submitted')")
        await page.close()
    assert status == 202
    assert heard["message"] == CATALOGUE["hi"]["hub.report.submitted"]


# ---- the support console -------------------------------------------------------------------------

FAILED = '.toast[data-event-type="report.failed"]'
# No worker at first: the first click fails NO_WORKER within seconds, for support to find.
QUICK_NO_WORKER = {"QUEUE_WAIT": "2", "SWEEP_INTERVAL": "0.2"}


async def worker_registered(redis: Redis) -> None:
    """Waits until the worker has told Redis it is alive: a job asked for from then on is taken in time."""
    async with asyncio.timeout(15):
        # The worker is another task's loop: nothing in this one is told, so Redis is asked.
        while not await redis.zcard(keys.WORKERS):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def ref_in(toast) -> str:
    """The reference a mentor reads out: shown in every toast of the page."""
    return (await toast.locator(".toast__ref-code").inner_text()).strip()


async def open_console(profile: BrowserContext, hub: TestServer, token: Callable[..., str]) -> Page:
    page = await profile.new_page()
    await page.goto(f"{hub.make_url('/support')}#token={token(SUPPORT, 'SUPPORT')}")
    await expect(page.locator("#search-form")).to_be_visible()
    return page


async def search(console: Page, **fields: str) -> None:
    for name in ("ref", "user", "batch"):
        await console.fill(f"#search-{name}", fields.get(name, ""))
    await console.click("#search-button")


async def confirm(console: Page, action: str) -> None:
    await console.click(f"#{action}")
    await expect(console.locator("#confirm")).to_be_visible()
    await console.click("#confirm-yes")


@pytest.mark.parametrize("env", [QUICK_NO_WORKER], indirect=True, ids=["quick no-worker"])
async def test_support_finds_the_mentors_jobs_reads_them_and_puts_them_right_in_the_console(
    open_dashboard,
    context: BrowserContext,
    hub: TestServer,
    token,
    settings: Settings,
    source,
    redis: Redis,
) -> None:
    await source.insert("users", ("user_id", "name"), [(MENTOR, "Asha Rao")])
    mentor = await open_dashboard()
    await mentor.click("#download-report")
    failed_ref = await ref_in(mentor.locator(FAILED))
    async with running_worker(settings):
        await worker_registered(redis)
        await mentor.click("#download-report")
        ready_toast = mentor.locator(READY)
        await expect(ready_toast).to_have_count(1)
        ready_ref = await ref_in(ready_toast)

        console = await open_console(context, hub, token)
        await search(console, user=MENTOR)
        rows = console.locator("#results .result")
        await expect(rows).to_have_count(2)
        assert [await row.get_attribute("data-ref") for row in await rows.all()] == [ready_ref, failed_ref]
        await expect(console.locator("#results-mentor")).to_contain_text("Asha Rao")
        await expect(console.locator("#refused-panel")).to_be_visible()

        await search(console, ref=f"{failed_ref[:4].lower()}-{failed_ref[4:]}")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("Failed: no report worker started it in time")

        await search(console, ref=ready_ref)
        await expect(rows).to_have_count(1)
        await rows.first.get_by_role("button", name="Open").click()
        await expect(console.locator("#job-ref")).to_have_text(ready_ref)
        await expect(console.locator("#job-connection")).to_have_attribute("data-connected", "true")
        await expect(console.locator("#job-connection")).to_contain_text("on 1 device")
        await expect(console.locator('#timeline li[data-type="report.completed"][data-delivered="1"]')).to_have_count(1)
        assert "/files/" not in await console.content(), "support is never shown a link to the file"

        told = await ready_toast.get_attribute("data-event-id")
        await confirm(console, "replay")
        await expect(console.locator("#action-result")).to_contain_text("Sent again")
        await expect(console.locator("#timeline li", has_text="(sent again by support)")).to_have_count(1)
        await expect(ready_toast).not_to_have_attribute("data-event-id", told or "")
        await expect(ready_toast.get_by_role("link", name="Save file")).to_have_count(1)

        await confirm(console, "rerun")
        await expect(console.locator("#action-result")).to_contain_text("Started again: new reference")
        new_ref = (await console.locator("#action-result").inner_text()).split("new reference ")[1][:8]
        await expect(mentor.locator(f"{READY} .toast__ref-code", has_text=new_ref)).to_have_count(1)

    await console.click("#audit-load")
    entries = console.locator("#audit .audit-entry")
    await expect(entries.first).to_have_attribute("data-action", "view")
    actions = [await entry.get_attribute("data-action") for entry in await entries.all()]
    # The job's page is read again after each action, to show it in the timeline.
    assert actions == ["view", "rerun", "view", "replay", "view", "search", "search", "search"]


@pytest.mark.parametrize(("name", "width"), [("desktop", 1280), ("phone", 360)], ids=["desktop", "phone"])
async def test_the_console_fits_the_screen_and_is_saved_as_a_screenshot(
    context: BrowserContext,
    hub: TestServer,
    token,
    call,
    name: str,
    width: int,
) -> None:
    await call("POST", "/v1/reports/course-progress", json={"batchId": "batch-0001"})
    console = await open_console(context, hub, token)
    await console.set_viewport_size({"width": width, "height": 800})
    await search(console, user=MENTOR)
    await expect(console.locator("#results .result")).to_have_count(1)
    await console.locator("#results .result").first.get_by_role("button", name="Open").click()
    await expect(console.locator("#timeline li")).to_have_count(1)
    scroll_width = await console.evaluate("() => document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the console scrolls sideways at {width}px ({scroll_width}px wide)"
    ARTIFACTS.mkdir(exist_ok=True)
    await console.screenshot(path=ARTIFACTS / f"support-{name}.png", full_page=True)
