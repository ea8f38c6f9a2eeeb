"""The OpenAPI document (`GET /v1/openapi.json`) against the hub itself: every route the app serves is in
it, and what the routes really answer, successes and errors, is what it describes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from arq.worker import Worker
from yarl import URL

from hub.app import create_app
from hub.config import Settings
from tests.helpers import MENTOR
from tests.openapi_doc import document, problems, template_of

BATCH = "batch-0001"
# aiohttp answers HEAD on every GET route by itself; the document names the GET.
IMPLIED = {"HEAD"}


def served_operations(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path) of every route; a static folder as `{prefix}/{filename}`."""
    operations = set()
    for route in app.router.routes():
        if route.method in IMPLIED:
            continue
        resource = route.resource
        assert resource is not None
        path = resource.canonical + ("/{filename}" if isinstance(resource, web.StaticResource) else "")
        operations.add((route.method, path))
    return operations


def documented_operations() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document()["paths"].items() for method in item}


def test_every_route_of_the_app_is_in_the_document(settings: Settings) -> None:
    served = served_operations(create_app(settings))
    assert served - documented_operations() == set()


def test_the_document_names_no_route_the_app_lacks(settings: Settings) -> None:
    assert documented_operations() - served_operations(create_app(settings)) == set()


async def test_the_hub_serves_the_document(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1/openapi.json") as response:
        served = await response.json()
    assert response.status == 200
    assert served == document()
    assert served["openapi"].startswith("3.")


class Answers:
    """Calls the hub and keeps, for every answer, what the document does not say of it."""

    def __init__(self, http: aiohttp.ClientSession, token: Callable[..., str]) -> None:
        self._http = http
        self._token = token
        self.operations: set[tuple[str, str]] = set()
        self.problems: list[str] = []

    async def __call__(self, method: str, url: str, user: str | None = MENTOR, *roles: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if user is not None:
            headers.setdefault("Authorization", f"Bearer {self._token(user, *roles)}")
        async with self._http.request(method, url, headers=headers, **kwargs) as response:
            body = await response.read()
        self.operations.add((method, template_of(URL(url).path)))
        content_type = response.headers.get("Content-Type", "")
        self.problems += problems(method, URL(url).path, response.status, content_type, body)
        return json.loads(body) if content_type.startswith("application/json") else body

    async def finished_job(self, job_id: str) -> dict[str, Any]:
        async with asyncio.timeout(30):
            while True:
                job = (await self("GET", f"/v1/reports/jobs/{job_id}"))["result"]
                if job["status"] in ("SUCCESS", "FAILED"):
                    return job
                await asyncio.sleep(0.2)


def telemetry_batch(actor: str) -> dict[str, Any]:
    event = {"eid": "INTERACT", "ets": 1_732_435_200_000, "ver": "3.0", "mid": "INTERACT:openapi-1",
             "actor": {"id": actor, "type": "User"},
             "context": {"channel": "diksha", "env": "course-dashboard", "pdata": {"id": "diksha.course-report-hub"}},
             "edata": {"type": "CLICK", "id": "download-report"}}  # fmt: skip
    return {"id": "api.sunbird.telemetry", "ver": "3.0", "params": {"msgid": "m-1"}, "ets": 1, "events": [event]}


def exhaust_request(**changes: Any) -> dict[str, Any]:
    asked = {"tag": "do_course_0001_batch-0001", "dataset": "progress-exhaust", "datasetConfig": {"batchId": BATCH}}
    return {"request": {**asked, **changes}}


async def test_what_every_route_answers_is_what_the_document_describes(
    http: aiohttp.ClientSession, token: Callable[..., str], worker: Worker
) -> None:
    call = Answers(http, token)
    other_job = "0" * 32
    await call("GET", "/v1/mentor/batches")
    await call("GET", "/v1/mentor/batches", None)
    await call("GET", "/v1/mentor/batches", None, headers={"Authorization": "Bearer not-a-token"})
    await call("GET", f"/v1/batches/{BATCH}/dashboard")
    await call("GET", f"/v1/batches/{BATCH}/dashboard", "someone-else")
    await call("GET", "/v1/batches/no-such-batch/dashboard")
    await call("GET", "/v1/batches/%E2%80%A2/dashboard")
    submitted = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
    await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
    await call("POST", "/v1/reports/course-progress", data=b"{not json")
    await call("POST", "/v1/reports/course-progress", json={"batchId": 7})
    job = await call.finished_job(submitted["result"]["jobId"])
    await call("GET", f"/v1/reports/jobs/{other_job}")
    await call("GET", "/v1/reports/jobs/not-a-job-id")
    await call("GET", f"/v1/reports/jobs/{job['jobId']}", "someone-else")
    await call("GET", "/v1/reports/jobs", params={"batchId": BATCH})
    await call("GET", "/v1/reports/jobs", params={"batchId": "no-such-batch"})
    link = URL(job["downloadUrl"])
    await call("GET", link.path_qs, None)
    await call("GET", link.path_qs, None, headers={"Range": "bytes=0-9"})
    await call("GET", str(link.with_query(expires="1", sig="x")), None)
    await call("GET", f"/files/{other_job}?expires=1&sig=x", None)
    await call("POST", "/v1/notifications/ticket")
    await call("GET", "/v1/notifications")
    await call("GET", "/v1/notifications", params={"after": "1-0"})
    await call("GET", "/v1/notifications", params={"after": "1-1\n"})
    await call("GET", "/v1/notifications/ws", None, params={"ticket": "used-or-made-up"})
    await call("GET", "/v1/notifications/ws")
    await call("GET", "/v1/notifications/stream", None, params={"ticket": "used-or-made-up"})
    await call("GET", "/v1/notifications/stream", params={"lastEventId": "x"})
    await call("GET", f"/v1/support/jobs/{job['jobId']}/events", "support-1", "SUPPORT")
    await call("GET", f"/v1/support/jobs/{job['jobId']}/events")
    await call("GET", f"/v1/support/jobs/{other_job}/events", "support-1", "SUPPORT")
    await call("POST", f"/v1/support/jobs/{job['jobId']}/replay", "support-1", "SUPPORT")
    await call("POST", "/v1/telemetry", json=telemetry_batch(MENTOR))
    await call("POST", "/v1/telemetry", json=telemetry_batch("someone-else"))
    await call("POST", "/v1/telemetry", json={"id": "api.sunbird.telemetry", "ver": "2.0"})
    await call("POST", "/v1/telemetry", data=b"")
    asked = await call("POST", "/dataset/v1/request/submit", json=exhaust_request())
    await call("POST", "/dataset/v1/request/submit", json=exhaust_request(dataset="userinfo-exhaust"))
    await call("POST", "/dataset/v1/request/submit", "someone-else", json=exhaust_request())
    await call("POST", "/dataset/v1/request/submit", json=exhaust_request(datasetConfig={"batchId": "no-such-batch"}))
    await call("POST", "/dataset/v1/request/submit", None)
    tag = "do_course_0001_batch-0001"
    await call("GET", f"/dataset/v1/request/read/{tag}", params={"requestId": asked["result"]["requestId"]})
    await call("GET", f"/dataset/v1/request/read/{tag}", params={"requestId": "NO-SUCH-REQUEST"})
    await call("GET", f"/dataset/v1/request/read/{tag}")
    await call("GET", f"/dataset/v1/request/list/{tag}")
    await call("GET", f"/dataset/v1/request/list/{tag}", params={"limit": "0"})
    await call("POST", "/dataset/v1/request/search", json={"request": {"filters": {"dataset": "progress-exhaust"}}})
    await call("POST", "/dataset/v1/request/search", json={"request": {"filters": {}}})
    support = ("support-1", "SUPPORT")
    await call("GET", "/v1/support/jobs", *support, params={"userId": MENTOR})
    await call("GET", "/v1/support/jobs", *support, params={"ref": "not a ref"})
    await call("GET", "/v1/support/jobs", params={"userId": MENTOR})
    await call("GET", f"/v1/support/jobs/{job['jobId']}", *support)
    await call("GET", f"/v1/support/jobs/{other_job}", *support)
    await call("POST", f"/v1/support/jobs/{job['jobId']}/rerun", *support)
    await call("POST", f"/v1/support/jobs/{job['jobId']}/rerun", *support)
    await call("GET", "/v1/support/audit", *support)
    await call("GET", "/v1/support/audit", *support, params={"limit": "0"})
    pages = ("/", "/support", "/web/hub-client.js", "/web/no-such-file")
    for path in ("/healthz", "/readyz", "/metrics", "/v1/openapi.json", *pages):
        await call("GET", path, None)
    assert job["status"] == "SUCCESS"
    assert call.operations == documented_operations()
    assert call.problems == []
