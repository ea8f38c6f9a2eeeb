"""The notification bell: every report that ends reaches Sunbird's notification service as a `feed`
notification, checked here by a receiver that validates each request as the service's SDK does."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import airspeed
import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hub.config import Settings
from hub.embedded import free_port
from tests.helpers import MENTOR, Call, next_event
from tests.scrape import moved, scrape, until

BATCH = "batch-0001"
# The notification service's own schema of `request` (Sunbird-Lern/notification-service,
# notification-sdk/src/main/resources/schemas/notification.json at 43bd26f), as its SDK validates it.
NOTIFICATIONS = json.loads((Path(__file__).parent / "sunbird" / "notification.json").read_text())
PORTAL = "https://diksha.example.org"
# A course name a Velocity template would eat: a reference, a directive, a quote.
COURSE_NAME = 'Maths $price #if(1) "Class 5"'


@dataclass
class Receiver:
    """A notification service that refuses the first `failures` requests with 503 (with `status`, when set,
    every one), then accepts."""

    failures: int = 0
    status: int = 503
    delay: float = 0
    attempts: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    in_hand: asyncio.Event = field(default_factory=asyncio.Event)  # a request came, answered or not

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        jsonschema.validate(
            body["request"], NOTIFICATIONS
        )  # an invalid request fails the handler: a 500, never accepted
        self.attempts += 1
        self.in_hand.set()
        await asyncio.sleep(self.delay)
        if self.attempts <= self.failures:
            return web.json_response({"responseCode": "SERVER_ERROR"}, status=self.status)
        self.accepted.extend(body["request"]["notifications"])
        self.arrived.set()
        return web.json_response({"responseCode": "OK", "result": {"response": "SUCCESS"}})


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def receiver_url(receiver: Receiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v2/notification/send", receiver.send)
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def env(env: dict[str, str], receiver_url: str) -> dict[str, str]:
    return {**env, "SUNBIRD_NOTIFICATION_URL": receiver_url, "PORTAL_URL": PORTAL}


def rendered_title(action: dict[str, Any]) -> str:
    """The title as the notification service stores it: `template.data` rendered by Velocity (airspeed, a
    Python implementation of it) with `template.params`, then read as the JSON the portal and app parse."""
    template = action["template"]
    return json.loads(airspeed.Template(template["data"]).merge(template["params"]))["title"]


async def arrival(receiver: Receiver, within: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(within):
        await receiver.arrived.wait()
    [notification] = receiver.accepted
    return notification


async def test_a_ready_report_is_a_feed_notification_for_its_requester(
    call: Call, http, socket_url, worker, receiver: Receiver
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        _, submitted = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        ready = await next_event(ws, "report.completed")
    notification = await arrival(receiver)
    assert (notification["ids"], notification["type"], notification["priority"]) == ([MENTOR], "feed", 1)
    assert notification["action"]["type"] == "extURL"
    assert notification["action"]["createdBy"]["type"] == "System"
    info = notification["action"]["additionalInfo"]
    assert (info["jobId"], info["status"], info["fileName"]) == (
        submitted["result"]["jobId"],
        "SUCCESS",
        ready["fileName"],
    )
    assert info["tag"] == f"do_course_0001_{BATCH}"


async def test_a_failed_report_is_a_feed_notification_with_its_reason(
    call: Call, worker, receiver: Receiver, settings: Settings
) -> None:
    with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE users SET name = CAST(x'ff' AS TEXT) WHERE user_id IN (SELECT user_id FROM users LIMIT 1)")
    await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
    notification = await arrival(receiver)
    assert notification["action"]["type"] == "extURL"
    assert notification["action"]["additionalInfo"]["reason"] == "SOURCE_ERROR"


async def test_tapping_a_ready_notification_opens_the_batch_dashboard_in_the_portal(
    call: Call, worker, receiver: Receiver
) -> None:
    await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
    info = (await arrival(receiver))["action"]["additionalInfo"]
    assert info["deepLink"] == f"{PORTAL}/learn/course/do_course_0001/dashboard/batches?batchIdentifier={BATCH}"
    assert info["downloadUrl"].startswith("http") and info["expiresAt"]


async def test_the_title_shows_a_course_name_as_it_is_after_velocity_renders_it(
    call: Call, worker, receiver: Receiver, settings: Settings
) -> None:
    with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE courses SET name = ?", (COURSE_NAME,))
    await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
    assert rendered_title((await arrival(receiver))["action"]).startswith(f"Course progress report of {COURSE_NAME} (")


async def test_the_title_is_in_the_language_the_mentor_last_opened_a_socket_in(
    call: Call, worker, receiver: Receiver
) -> None:
    assert (await call("POST", "/v1/notifications/ticket?lang=hi"))[0] == 200
    await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
    action = (await arrival(receiver))["action"]
    assert rendered_title(action).endswith("की पाठ्यक्रम प्रगति रिपोर्ट तैयार है।")
    assert action["additionalInfo"]["messageKey"] == "hub.feed.ready"


async def test_a_notification_refused_for_a_while_is_sent_again(call: Call, worker, receiver: Receiver) -> None:
    receiver.failures = 2
    await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
    await arrival(receiver)
    assert receiver.attempts == 3


async def test_a_slow_notification_service_never_holds_the_report(
    call: Call, http, socket_url, worker, receiver: Receiver
) -> None:
    """The service takes a minute to answer; the report is ready within seconds all the same, and the
    service did get its notification (a hub that never sent one would pass the first half alone)."""
    receiver.delay = 60
    async with http.ws_connect(await socket_url()) as ws:
        await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        ready = await next_event(ws, "report.completed", within=10)
    async with asyncio.timeout(10):
        await receiver.in_hand.wait()
    assert ready["rows"] == 120
    assert receiver.attempts == 1


async def test_notifications_sent_retried_and_refused_are_counted(call: Call, worker, receiver: Receiver, hub) -> None:
    url = str(hub.make_url("/metrics"))
    before = await scrape(url)
    receiver.failures = 2
    await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
    await arrival(receiver)
    sent = await until(url, lambda now: moved(before, now, "hub_notifications_sent_total") == 1)
    receiver.failures, receiver.status = 1_000, 400
    await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
    refused = await until(url, lambda now: moved(sent, now, "hub_notifications_failed_total", reason="refused") == 1)
    assert moved(before, sent, "hub_notification_retries_total") == 2
    assert moved(sent, refused, "hub_notifications_sent_total") == 0
