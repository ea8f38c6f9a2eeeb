"""The data-exhaust API as the Sunbird portal calls it: its on-demand reports component's requests, replayed
with the headers its proxy and the API gateway add, against a real hub, worker and Valkey."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from hub import keys
from hub.config import Settings
from tests.helpers import MENTOR, next_event

BATCH = "batch-0001"
COURSE = "do_course_0001"
TAG = f"{COURSE}_{BATCH}"
CHANNEL = "0126796199493140480"  # the portal's proxy sends the user's root org id
GATEWAY_KEY = "gateway-api-key-not-a-user-token"
SUBMIT = "/dataset/v1/request/submit"
SUBMIT_API = "ekstep.analytics.dataset.request.submit"

Portal = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


def portal_submit_body(encryption_key: str | None = None, requested_by: str = MENTOR) -> dict[str, Any]:
    """What `OnDemandReportsComponent.submitRequest` posts."""
    request: dict[str, Any] = {
        "tag": TAG,
        "requestedBy": requested_by,
        "dataset": "progress-exhaust",
        "datasetConfig": {"batchId": BATCH},
        "output_format": "csv",
    }
    if encryption_key:
        request["encryptionKey"] = encryption_key
    return {"request": request}


@pytest.fixture
def portal(http: aiohttp.ClientSession, token: Callable[..., str]) -> Portal:
    """A call as it reaches the analytics service from the portal's proxy through the gateway: the user's
    token in `x-authenticated-user-token`, the gateway's key in `Authorization`, the channel header."""

    async def send(method: str, path: str, user: str = MENTOR, *roles: str, **kwargs: Any) -> tuple[int, dict]:
        headers = {**gateway_headers(user, token(user, *roles)), **kwargs.pop("headers", {})}
        async with http.request(method, path, headers=headers, **kwargs) as response:
            return response.status, await response.json()

    return send


def gateway_headers(user: str, user_token: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Channel-Id": CHANNEL,
        "X-Authenticated-Userid": user,
        "X-App-Id": "dev.sunbird.portal",
        "x-authenticated-user-token": user_token,
        "Authorization": f"Bearer {GATEWAY_KEY}",
    }


@pytest.fixture
def env(env: dict[str, str], request: pytest.FixtureRequest) -> dict[str, str]:
    """A test changes settings with `@pytest.mark.parametrize("env", [{...}], indirect=True)`; a value that
    is a function is called as the test starts (not when tests are collected, minutes earlier)."""
    changes = getattr(request, "param", {})
    return {**env, **{name: value() if callable(value) else value for name, value in changes.items()}}


@pytest.mark.parametrize(
    ("filters", "headers", "message"),
    [
        ({"status": 7}, {}, "filters.status must be a string or a list of strings"),
        ({"dataset": ["progress-exhaust", {}]}, {}, "filters.dataset must be a string or a list of strings"),
        ({"channel": [CHANNEL]}, {}, "filters.channel must be a string"),
        ({"channel": CHANNEL}, {"X-Channel-Id": "c" * 201}, "'X-Channel-ID' must be at most 200 characters."),
    ],
)
async def test_a_search_filter_or_channel_of_the_wrong_kind_is_a_client_error(
    portal: Portal, filters: dict[str, Any], headers: dict[str, str], message: str
) -> None:
    """Not an empty answer: a filter that is a number or a list of channels would match nothing."""
    search = {"request": {"filters": filters}}
    status, answer = await portal("POST", "/dataset/v1/request/search", json=search, headers=headers)
    assert (status, answer["params"]["errmsg"]) == (400, message)


@pytest.fixture
def broken_row(settings: Settings, batch: dict[str, Any]) -> None:
    """A participant whose name is not valid UTF-8: the source cannot read that row, the report fails."""
    with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE users SET name = CAST(x'ff' AS TEXT) WHERE user_id IN (SELECT user_id FROM users LIMIT 1)")


async def wait_for_status(portal: Portal, request_id: str, wanted: str) -> dict[str, Any]:
    """Polls the request as the portal's download link does, until it has the wanted status."""
    async with asyncio.timeout(15):
        while True:
            _, body = await portal("GET", f"/dataset/v1/request/read/{TAG}?requestId={request_id}")
            if body["result"]["status"] == wanted:
                return body["result"]
            await asyncio.sleep(0.1)


async def test_the_portals_submit_list_and_read_get_the_report_in_seconds(
    portal: Portal, call, http, socket_url, worker
):
    async with http.ws_connect(await socket_url()) as ws:
        status, submitted = await portal("POST", SUBMIT, json=portal_submit_body())
        assert status == 200
        assert submitted["id"] == "ekstep.analytics.dataset.request.submit"
        assert submitted["responseCode"] == "OK"
        job = submitted["result"]
        assert job["status"] == "SUBMITTED"
        assert (job["tag"], job["dataset"], job["requestedBy"]) == (f"{TAG}:{CHANNEL}", "progress-exhaust", MENTOR)
        assert (job["requestedChannel"], job["datasetConfig"], job["attempts"]) == (CHANNEL, {"batchId": BATCH}, 0)
        assert job["downloadUrls"] == []
        assert job["expiresAt"] > time.time() * 1000  # always given, as Sunbird's is
        ready = await next_event(ws, "report.completed")  # the same push as a click's
    status, listing = await portal("GET", f"/dataset/v1/request/list/{TAG}")
    assert status == 200
    assert listing["id"] == "ekstep.analytics.dataset.request.list"
    assert listing["result"]["count"] == 1
    row = listing["result"]["jobs"][0]  # the fields the portal's table reads
    assert (row["requestId"], row["dataset"], row["status"]) == (job["requestId"], "progress-exhaust", "SUCCESS")
    assert row["jobStats"]["dtJobSubmitted"] <= row["jobStats"]["dtJobCompleted"] == row["lastUpdated"]
    _, run = await call("GET", f"/v1/reports/jobs/{ready['jobId']}")
    assert row["jobStats"]["executionTime"] == ms(run["result"]["completedAt"]) - ms(run["result"]["startedAt"])
    # The portal's download link asks again when a link fails: tag up to ':' and the request id.
    status, read = await portal(
        "GET", f"/dataset/v1/request/read/{row['tag'].split(':')[0]}?requestId={job['requestId']}"
    )
    assert status == 200
    assert read["id"] == "ekstep.analytics.dataset.request.info"
    [url] = read["result"]["downloadUrls"]
    assert url.split("?")[0] == ready["downloadUrl"].split("?")[0]
    assert read["result"]["expiresAt"] > row["jobStats"]["dtJobCompleted"]
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url) as response:
        assert response.status == 200
        assert len((await response.read()).decode("utf-8-sig").splitlines()) == 1 + 120


async def test_a_user_token_in_authorization_works_without_the_gateway(http, token) -> None:
    headers = {"Authorization": f"Bearer {token(MENTOR)}", "X-Channel-Id": CHANNEL}
    async with http.post(SUBMIT, json=portal_submit_body(), headers=headers) as response:
        assert response.status == 200
        assert (await response.json())["result"]["requestedBy"] == MENTOR


async def test_the_gateways_key_alone_is_not_a_user(portal: Portal) -> None:
    status, body = await portal("POST", SUBMIT, json=portal_submit_body(), headers={"x-authenticated-user-token": ""})
    assert status == 401
    assert (body["responseCode"], body["params"]["status"]) == ("UNAUTHORIZED", "failed")


async def test_the_same_request_on_the_same_day_names_the_same_job(portal: Portal, redis) -> None:
    answers = await asyncio.gather(*(portal("POST", SUBMIT, json=portal_submit_body()) for _ in range(5)))
    assert [status for status, _ in answers] == [200] * 5
    assert len({body["result"]["requestId"] for _, body in answers}) == 1
    assert await redis.zcard("arq:queue") == 1
    _, listing = await portal("GET", f"/dataset/v1/request/list/{TAG}")
    assert listing["result"]["count"] == 1


async def test_a_protected_request_is_another_request_and_the_hubs_guard_still_holds(portal: Portal, call) -> None:
    _, plain = await portal("POST", SUBMIT, json=portal_submit_body())
    status, protected = await portal("POST", SUBMIT, json=portal_submit_body(encryption_key="secret123"))
    assert status == 409  # one job per (user, batch) at a time, however it was asked for
    assert protected["params"]["errmsg"] == "Download in-progress. Please try after sometime"
    click_status, _ = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
    assert click_status == 409
    assert plain["result"]["status"] == "SUBMITTED"


async def test_a_failed_request_asked_again_runs_again_under_the_same_id(portal: Portal, broken_row, worker) -> None:
    _, first = await portal("POST", SUBMIT, json=portal_submit_body())
    failed = await wait_for_status(portal, first["result"]["requestId"], "FAILED")
    assert failed["statusMessage"] == "Download has failed. Please try again after sometime (SOURCE_ERROR)"
    _, again = await portal("POST", SUBMIT, json=portal_submit_body())
    assert again["result"]["requestId"] == first["result"]["requestId"]
    assert again["result"]["status"] in ("SUBMITTED", "PROCESSING")
    assert again["result"]["attempts"] == 1


async def test_requested_by_in_the_body_does_not_make_a_stranger_a_mentor(portal: Portal) -> None:
    status, body = await portal("POST", SUBMIT, "stranger", json=portal_submit_body(requested_by=MENTOR))
    assert status == 403
    assert (body["responseCode"], body["params"]["err"]) == ("FORBIDDEN", "FORBIDDEN")


async def test_an_org_admin_may_ask_for_any_batchs_report(portal: Portal) -> None:
    status, body = await portal("POST", SUBMIT, "admin-1", "ORG_ADMIN", json=portal_submit_body())
    assert status == 200
    assert body["result"]["requestedBy"] == "admin-1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"request": {**portal_submit_body()["request"], "tag": ""}}, "tag is empty"),
        (
            {"request": {**portal_submit_body()["request"], "dataset": "response-exhaust"}},
            "supported: progress-exhaust",
        ),
        ({"id": "ekstep.analytics.dataset.request.submit", "params": {}}, "request is empty"),
        ({"request": {**portal_submit_body()["request"], "datasetConfig": {}}}, "datasetConfig is empty"),
        ({"request": {**portal_submit_body()["request"], "encryptionKey": 123456}}, "'encryptionKey'"),
        ({"request": {**portal_submit_body()["request"], "tag": "t" * 1024 * 1024}}, "over 1048576 bytes"),
    ],
)
async def test_a_bad_body_is_a_client_error_in_the_envelope(portal: Portal, body: dict, message: str) -> None:
    status, answer = await portal("POST", SUBMIT, json=body)
    assert status == 400
    assert answer["id"] == "ekstep.analytics.dataset.request.submit"
    assert (answer["responseCode"], answer["params"]["err"], answer["params"]["status"]) == (
        "CLIENT_ERROR", "CLIENT_ERROR", "failed"
    )  # fmt: skip
    assert message in answer["params"]["errmsg"]


async def test_a_request_read_in_another_channel_or_with_an_unknown_id_is_answered_as_sunbird_does(
    portal: Portal,
) -> None:
    """HTTP 200, `responseCode` OK, `params.status` failed: what the portal's download link expects."""
    _, submitted = await portal("POST", SUBMIT, json=portal_submit_body())
    path = f"/dataset/v1/request/read/{TAG}?requestId={submitted['result']['requestId']}"
    unknown = f"/dataset/v1/request/read/{TAG}?requestId=0123456789ABCDEF"
    for answered in (
        await portal("GET", path, headers={"X-Channel-Id": "another-channel"}),
        await portal("GET", unknown),
    ):
        status, body = answered
        assert (status, body["responseCode"], body["params"]["status"], body["params"]["err"]) == (
            200, "OK", "failed", "OK"
        )  # fmt: skip
        assert body["params"]["errmsg"] == "no job available with the given request_id and tag"
        assert body["result"] is None


async def test_search_finds_the_channels_requests_the_caller_may_see(portal: Portal) -> None:
    await portal("POST", SUBMIT, json=portal_submit_body())
    search = {"request": {"filters": {"dataset": "progress-exhaust", "status": ["SUBMITTED", "PROCESSING"]}}}
    status, found = await portal("POST", "/dataset/v1/request/search", json=search)
    assert status == 200
    assert found["id"] == "ekstep.analytics.dataset.request.search"
    assert found["result"]["count"] == 1
    assert found["result"]["jobs"][0]["requestedChannel"] == CHANNEL
    _, hidden = await portal("POST", "/dataset/v1/request/search", "stranger", json=search)
    assert hidden["result"] == {"count": 0, "jobs": []}
    status, empty = await portal("POST", "/dataset/v1/request/search", json={"request": {"filters": {}}})
    assert (status, empty["params"]["errmsg"]) == (400, "Filters are empty")


def ms(iso_time: str) -> int:
    return int(datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp() * 1000)


def zone_on_another_day() -> str:
    """A zone whose date is not UTC's right now (UTC+14 from 10:00 UTC, UTC-12 before 12:00 UTC), so that a
    same-day rule read in UTC shows."""
    return "Etc/GMT-14" if datetime.now(UTC).hour >= 10 else "Etc/GMT+12"


def sunbird_request_id(*parts: str) -> str:
    """The analytics service's `_getRequestId`: MD5 of the parts joined by `|`, upper-case hex."""
    return hashlib.md5("|".join(parts).encode(), usedforsecurity=False).hexdigest().upper()


@pytest.mark.parametrize("env", [{"REPORT_TIMEZONE": zone_on_another_day}], indirect=True)
@pytest.mark.parametrize("config", [{"batchId": BATCH}, {"batchId": BATCH, "type": "progress-exhaust"}])
async def test_the_request_id_is_sunbirds_for_the_day_in_the_reports_zone(
    portal: Portal, settings: Settings, config: dict[str, str]
) -> None:
    """Sunbird's argument swap puts the dataset first; `datasetConfig.type` ends the key when present."""
    body = {"request": {**portal_submit_body()["request"], "datasetConfig": config}}
    days = {f"{datetime.now(settings.report_zone):%Y-%m-%d}"}
    _, submitted = await portal("POST", SUBMIT, json=body)
    days.add(f"{datetime.now(settings.report_zone):%Y-%m-%d}")
    assert f"{datetime.now(UTC):%Y-%m-%d}" not in days
    kind = [config["type"]] if "type" in config else []
    expected = {sunbird_request_id("progress-exhaust", TAG, MENTOR, CHANNEL, day, *kind) for day in days}
    assert submitted["result"]["requestId"] in expected


async def test_a_submission_that_waits_too_long_for_its_request_lock_is_told_to_retry(
    portal: Portal, http, token, redis
) -> None:
    """Another hub's submission of the same request holds the lock and never lets go (it died)."""
    _, first = await portal("POST", SUBMIT, json=portal_submit_body())
    await redis.set(keys.exhaust_lock(first["result"]["requestId"]), "another-hubs-token", ex=60)
    headers = gateway_headers(MENTOR, token(MENTOR))
    async with asyncio.timeout(20), http.post(SUBMIT, json=portal_submit_body(), headers=headers) as response:
        status, body, retry_after = response.status, await response.json(), response.headers.get("Retry-After")
    assert (status, body["id"], body["responseCode"]) == (503, SUBMIT_API, "SERVER_ERROR")
    assert retry_after is not None and int(retry_after) > 0
    assert await redis.get(keys.exhaust_lock(first["result"]["requestId"])) == b"another-hubs-token"


async def test_the_request_lock_is_released_only_by_its_holder_in_one_step(portal: Portal, redis) -> None:
    """A GET then a DEL could delete a lock that expired in between and was taken by another submission;
    the lock is released by a script that compares and deletes at once."""
    deletions = []
    async with redis.monitor() as monitor:
        await portal("POST", SUBMIT, json=portal_submit_body())
        await redis.set("marker-after-the-submit", 1)
        async with asyncio.timeout(10):
            async for command in monitor.listen():
                if "marker-after-the-submit" in command["command"]:
                    break
                if command["command"].upper().startswith("DEL ") and "exhaust" in command["command"]:
                    deletions.append(command["client_type"])
    assert deletions == ["lua"]
