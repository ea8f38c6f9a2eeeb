"""The dashboard page in a real browser (Debian's Chromium driven by Playwright) against a real hub,
arq worker and Valkey: the toasts a mentor sees, the file they save, the telemetry of their click, and
the page at desktop and phone width (screenshots land in `artifacts/`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from aiohttp.test_utils import TestServer
from arq.worker import Worker
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from hub.config import Settings
from tests.helpers import MENTOR, Call, next_event, running_worker

BATCH = "batch-0001"
COURSE = "do_course_0001"
READY_MESSAGE = "Your download is ready."
FAILED_MESSAGE = "Download has failed. Please try again after sometime"
IN_PROGRESS_MESSAGE = "Download in-progress. Please try after sometime"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WAIT_MS = 15_000  # a report of 120 rows takes well under a second; this only bounds a broken run
READY = '.toast[data-event-type="report.completed"]'

# Keeps every WebSocket the page opens reachable, so a test can kill the live one the way a dropped
# network would (Chromium's offline emulation leaves an open socket alone).
TRACK_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
    }
  };
})();
"""


expect.set_options(timeout=WAIT_MS)


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed; CI must install it (apt-get install -y chromium).")
    pytest.skip("Chromium is not installed: apt-get install chromium")


@pytest.fixture
async def browser(hub: TestServer) -> AsyncIterator[Browser]:
    """Depends on `hub` so that the browser, and its sockets, are gone before the hub shuts down."""
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """One browser profile; every uncaught error of its pages, and anything the hub's
    Content-Security-Policy blocks, fails the test."""
    ctx = await browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(WAIT_MS)
    errors: list[str] = []

    def watch(page: Page) -> None:
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: "Content Security Policy" in message.text and errors.append(message.text))

    ctx.on("page", watch)
    yield ctx
    await ctx.close()
    assert not errors, f"the page threw: {errors}"


@pytest.fixture
def open_dashboard(context: BrowserContext, hub: TestServer, token: Callable[..., str]) -> Callable[..., Any]:
    """Opens the page signed in as MENTOR, with the batch's figures shown and the live feed open."""

    async def open_page(*, track_sockets: bool = False) -> Page:
        page = await context.new_page()
        if track_sockets:
            await page.add_init_script(TRACK_SOCKETS)
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


async def test_the_excel_format_chosen_beside_the_button_is_what_is_saved_and_is_remembered(
    open_dashboard, worker: Worker, tmp_path: Path
) -> None:
    page = await open_dashboard()
    await page.select_option("#report-format", "xlsx")
    await page.click("#download-report")
    toast = page.locator(READY)
    await expect(toast).to_have_count(1)
    async with page.expect_download() as download_info:
        await toast.get_by_role("link", name="Save file").click()
    download = await download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert openpyxl.load_workbook(saved).worksheets[0].max_row == 1 + 120
    await page.reload()
    await expect(page.locator("#report-format")).to_have_value("xlsx")


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
    page = await open_dashboard(track_sockets=True)
    async with http.ws_connect(await socket_url()) as watcher:
        await page.click("#download-report")
        # The page has its resume point once it heard "started"; the next test covers a page without one.
        await expect(page.locator('.toast[data-event-type="report.submitted"]')).to_have_count(1)

        await context.set_offline(True)
        await page.evaluate("() => window.__sockets.forEach((socket) => socket.close())")
        await page.wait_for_function("() => window.hubApp.client.state !== 'open'")
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
    page = await open_dashboard(track_sockets=True)
    await context.set_offline(True)
    await page.evaluate("() => window.__sockets.forEach((socket) => socket.close())")
    await page.wait_for_function("() => window.hubApp.client.state !== 'open'")
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
