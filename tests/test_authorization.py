"""Who gets what, in one table: every route of the hub against every kind of caller, on a hub that trusts
a Keycloak realm (RS256 from its JWKS URL, issuer and audience checked) as DIKSHA runs it.

The batch `batch-0001` is mentored by MENTOR and was created by CREATOR; OTHER_MENTOR mentors another
batch; the job is MENTOR's, and its report is ready (the link is its fresh download link).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.config import Settings
from hub.source.seed import seed
from tests.helpers import MENTOR, next_event
from tests.keycloak import AUDIENCE, Realm, serving_realm
from tests.probe import status_of

BATCH = "batch-0001"
CREATOR = "creator-0001"
OTHER_MENTOR = "mentor-of-another-batch"
STRANGER = "user-with-no-batch"
SUPPORT = "support-0001"
TAG = f"do_course_0001_{BATCH}"
# The portal's on-demand report request (the data-exhaust API), called here without the gateway.
EXHAUST_REQUEST = {"request": {"tag": TAG, "dataset": "progress-exhaust", "datasetConfig": {"batchId": BATCH}}}

CALLERS = ("no token", "expired", "wrong signature", "alg none", "wrong audience", "wrong issuer",
           "batch mentor", "other mentor", "batch creator", "another user", "SUPPORT")  # fmt: skip
REFUSED = (401,) * 6  # the first six callers: no token the realm issued for the hub and still valid
ANYONE = (200,) * 11

# route -> expected status for each caller above, in that order
MATRIX: dict[tuple[str, str], tuple[int, ...]] = {
    ("GET", "/v1/mentor/batches"):                      (*REFUSED, 200, 200, 200, 200, 200),
    ("GET", "/v1/batches/{batch}/dashboard"):           (*REFUSED, 200, 403, 200, 403, 403),
    ("POST", "/v1/reports/course-progress"):            (*REFUSED, 202, 403, 202, 403, 403),
    ("GET", "/v1/reports/jobs/{job}"):                  (*REFUSED, 200, 403, 403, 403, 200),
    ("GET", "/v1/reports/jobs"):                        (*REFUSED, 200, 200, 200, 200, 200),
    ("GET", "/v1/reports/jobs?batchId={batch}"):        (*REFUSED, 200, 403, 200, 403, 403),
    ("GET", "/v1/notifications"):                       (*REFUSED, 200, 200, 200, 200, 200),
    ("POST", "/v1/notifications/ticket"):               (*REFUSED, 200, 200, 200, 200, 200),
    ("GET", "/v1/notifications/ws"):                    (*REFUSED, 101, 101, 101, 101, 101),
    ("GET", "/v1/notifications/stream"):                (*REFUSED, 200, 200, 200, 200, 200),
    ("GET", "/v1/support/jobs/{job}/events"):           (*REFUSED, 403, 403, 403, 403, 200),
    ("POST", "/v1/support/jobs/{job}/replay"):          (*REFUSED, 403, 403, 403, 403, 200),
    ("GET", "/v1/support/jobs?userId={mentor}"):        (*REFUSED, 403, 403, 403, 403, 200),
    ("GET", "/v1/support/jobs/{job}"):                  (*REFUSED, 403, 403, 403, 403, 200),
    ("GET", "/v1/support/audit"):                       (*REFUSED, 403, 403, 403, 403, 200),
    ("POST", "/v1/support/jobs/{job}/rerun"):           (*REFUSED, 403, 403, 403, 403, 202),
    ("POST", "/v1/telemetry"):                          (*REFUSED, 200, 200, 200, 200, 200),
    ("POST", "/dataset/v1/request/submit"):             (*REFUSED, 200, 403, 200, 403, 403),
    ("GET", "/dataset/v1/request/read/{tag}?requestId={request}"): (*REFUSED, 200, 403, 200, 403, 403),
    ("GET", "/dataset/v1/request/list/{tag}"):          (*REFUSED, 200, 200, 200, 200, 200),
    ("POST", "/dataset/v1/request/search"):             (*REFUSED, 200, 200, 200, 200, 200),
    ("GET", "{link}"):                                  ANYONE,  # the signed link is the credential
    ("GET", "/files/{job}"):                            (403,) * 11,  # the same link without its signature
    ("GET", "/"):                                       ANYONE,
    ("GET", "/web/hub-client.js"):                      ANYONE,
    ("GET", "/support"):                                ANYONE,  # the console's page; its data needs SUPPORT
    ("GET", "/healthz"):                                ANYONE,
    ("GET", "/readyz"):                                 ANYONE,
    ("GET", "/metrics"):                                ANYONE,
    ("GET", "/v1/openapi.json"):                        ANYONE,
}  # fmt: skip


@pytest.fixture
async def realm() -> AsyncIterator[Realm]:
    async with serving_realm() as running:
        yield running


@pytest.fixture
def env(env: dict[str, str], realm: Realm) -> dict[str, str]:
    keycloak = {"JWT_JWKS_URL": realm.jwks_url, "JWT_ISSUER": realm.issuer, "JWT_AUDIENCE": AUDIENCE}
    return {**{k: v for k, v in env.items() if k != "JWT_SECRET"}, **keycloak}


def tokens(realm: Realm) -> dict[str, str | None]:
    """The Authorization token each kind of caller sends (None: no header at all)."""
    forger = rsa.generate_private_key(65537, 2048)
    unsigned = jwt.encode({"sub": MENTOR, "exp": int(time.time()) + 300, "iss": realm.issuer, "aud": AUDIENCE},
                          None, algorithm="none")  # fmt: skip
    return {
        "no token": None,
        "expired": realm.token(MENTOR, ttl=-60),
        "wrong signature": jwt.encode({"sub": MENTOR, "exp": int(time.time()) + 300, "iss": realm.issuer,
                                       "aud": AUDIENCE}, forger, algorithm="RS256", headers={"kid": realm.kid}),
        "alg none": unsigned,
        "wrong audience": realm.token(MENTOR, aud="another-client"),
        "wrong issuer": realm.token(MENTOR, iss="https://elsewhere.example.org/auth/realms/sunbird"),
        "batch mentor": realm.token(MENTOR),
        "other mentor": realm.token(OTHER_MENTOR),
        "batch creator": realm.token(f"f:realm-1:{CREATOR}"),
        "another user": realm.token(STRANGER),
        "SUPPORT": realm.token(SUPPORT, "SUPPORT"),
    }  # fmt: skip


def user_of(caller: str) -> str:
    return {"other mentor": OTHER_MENTOR, "batch creator": CREATOR, "another user": STRANGER,
            "SUPPORT": SUPPORT}.get(caller, MENTOR)  # fmt: skip


def body_for(path: str, caller: str) -> dict[str, Any] | None:
    if path == "/v1/reports/course-progress":
        return {"batchId": BATCH}
    if path == "/dataset/v1/request/submit":
        return EXHAUST_REQUEST
    if path == "/dataset/v1/request/search":
        return {"request": {"filters": {"dataset": "progress-exhaust"}}}
    if path == "/v1/telemetry":
        event = {"eid": "INTERACT", "ets": 1_732_435_200_000, "ver": "3.0", "mid": f"INTERACT:{caller}",
                 "actor": {"id": user_of(caller), "type": "User"},
                 "context": {"channel": "diksha", "env": "course-dashboard", "pdata": {"id": "diksha.hub"}},
                 "edata": {"type": "CLICK", "id": "download-report"}}  # fmt: skip
        return {"id": "api.sunbird.telemetry", "ver": "3.0", "params": {"msgid": caller}, "events": [event]}
    return None


async def test_every_route_answers_every_kind_of_caller_as_the_table_says(
    http: aiohttp.ClientSession, realm: Realm, settings: Settings, source, worker
) -> None:
    await seed(source, 3, batch_id="batch-other", course_id="do_course_0001", mentor_id=OTHER_MENTOR, progress=None)
    with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE batches SET created_by = ? WHERE batch_id = ?", (CREATOR, BATCH))
    mentor = {"Authorization": f"Bearer {realm.token(MENTOR)}"}
    async with http.post("/v1/notifications/ticket", headers=mentor) as response:
        ticket = (await response.json())["result"]["ticket"]
    async with http.ws_connect(f"/v1/notifications/ws?ticket={ticket}") as ws:
        async with http.post("/v1/reports/course-progress", headers=mentor, json={"batchId": BATCH}):
            pass
        ready = await next_event(ws, "report.completed")
        async with http.post("/dataset/v1/request/submit", headers=mentor, json=EXHAUST_REQUEST) as response:
            request_id = (await response.json())["result"]["requestId"]
        await next_event(ws, "report.completed")
    link = ready["downloadUrl"].removeprefix(settings.public_url)
    callers = tokens(realm)
    mismatches = []
    for (method, path), expected in MATRIX.items():
        url = path.format(batch=BATCH, job=ready["jobId"], link=link, mentor=MENTOR, tag=TAG, request=request_id)
        for caller, want in zip(CALLERS, expected, strict=True):
            token = callers[caller]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            got = await status_of(http, method, url, headers, body_for(path, caller))
            if got != want:
                mismatches.append(f"{method} {path} as {caller}: {got}, expected {want}")
    assert mismatches == []
