"""Who may do what, and what bad input gets back: always the envelope, never a stack trace."""

from __future__ import annotations

import sqlite3
import time

import aiohttp
import jwt
import pytest

from hub.request import HUB
from hub.source.seed import seed
from tests.helpers import MENTOR, SECRET, Call, next_event

BATCH = "batch-0001"
SUBMIT = "/v1/reports/course-progress"


def keycloak_token(sub: str, roles: list[str], exp_in: int = 600) -> str:
    claims = {"sub": sub, "realm_access": {"roles": roles}, "exp": int(time.time()) + exp_in}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_a_mentor_of_another_batch_is_forbidden(call: Call, source) -> None:
    await seed(source, 3, batch_id="batch-other", course_id="do_course_0001", mentor_id="someone-else", progress=None)
    status, body = await call("POST", SUBMIT, json={"batchId": "batch-other"})
    assert status == 403
    assert body["params"]["err"] == "NOT_A_MENTOR"
    assert body["responseCode"] == "FORBIDDEN"
    status, _ = await call("GET", "/v1/batches/batch-other/dashboard")
    assert status == 403


async def test_an_unknown_batch_is_not_found(call: Call) -> None:
    status, body = await call("POST", SUBMIT, json={"batchId": "no-such-batch"})
    assert status == 404
    assert body["params"]["err"] == "BATCH_NOT_FOUND"
    assert body["responseCode"] == "RESOURCE_NOT_FOUND"


@pytest.mark.parametrize(
    ("payload", "err"),
    [
        (b"{not json", "INVALID_JSON"),
        (b"", "INVALID_REQUEST"),
        (b"[1, 2]", "INVALID_REQUEST"),
        (b'{"batchId": 42}', "INVALID_REQUEST"),
        (b'{"batchId": ""}', "INVALID_REQUEST"),
        (b'{"course": "x"}', "INVALID_REQUEST"),
    ],
)
async def test_a_body_without_a_string_batch_id_is_a_client_error(call: Call, payload: bytes, err: str) -> None:
    status, body = await call("POST", SUBMIT, data=payload, headers={"Content-Type": "application/json"})
    assert status == 400
    assert body["params"] == {**body["params"], "status": "failed", "err": err}
    assert body["responseCode"] == "CLIENT_ERROR"
    assert body["params"]["errmsg"]


async def test_an_oversized_body_is_a_client_error(call: Call) -> None:
    status, body = await call("POST", SUBMIT, data=b"x" * (2 * 1024 * 1024))
    assert status == 400
    assert body["params"]["err"] == "REQUEST_TOO_LARGE"


@pytest.mark.parametrize(
    ("header", "err"),
    [
        (None, "UNAUTHORIZED"),
        ("Bearer not-a-jwt", "UNAUTHORIZED"),
        ("Basic abc", "UNAUTHORIZED"),
        (
            f"Bearer {jwt.encode({'sub': MENTOR, 'exp': int(time.time()) + 60}, 'wrong-secret-' * 3)}",
            "UNAUTHORIZED",
        ),
        (f"Bearer {keycloak_token(MENTOR, [], exp_in=-10)}", "TOKEN_EXPIRED"),
    ],
)
async def test_a_missing_forged_or_expired_token_is_unauthorized(call: Call, header: str | None, err: str) -> None:
    headers = {"Authorization": header} if header else {}
    status, body = await call("GET", "/v1/mentor/batches", user=None, headers=headers)
    assert status == 401
    assert body["params"]["err"] == err
    assert body["responseCode"] == "UNAUTHORIZED"


async def test_a_keycloak_subject_resolves_to_the_sunbird_user_id(call: Call) -> None:
    header = {"Authorization": f"Bearer {keycloak_token(f'f:5a8a3f2b-3409-42e0-9001-f913bc0fde31:{MENTOR}', [])}"}
    status, body = await call("GET", "/v1/mentor/batches", user=None, headers=header)
    assert status == 200
    assert [b["batchId"] for b in body["result"]["batches"]] == [BATCH]


async def test_the_mentor_sees_only_batches_they_mentor_or_created(call: Call, source) -> None:
    await seed(source, 2, batch_id="batch-other", course_id="do_course_0001", mentor_id="someone-else", progress=None)
    _, body = await call("GET", "/v1/mentor/batches")
    assert [b["batchId"] for b in body["result"]["batches"]] == [BATCH]
    assert body["result"]["batches"][0]["participantCount"] == 120


async def test_another_users_job_is_forbidden_but_support_may_read_it(call: Call, http, token) -> None:
    _, submitted = await call("POST", SUBMIT, json={"batchId": BATCH})
    job_path = f"/v1/reports/jobs/{submitted['result']['jobId']}"
    status, body = await call("GET", job_path, user="intruder")
    assert status == 403
    assert body["params"]["err"] == "NOT_YOUR_JOB"
    headers = {"Authorization": f"Bearer {token('support-1', 'SUPPORT')}"}
    status, body = await call("GET", job_path, user=None, headers=headers)
    assert status == 200
    assert body["result"]["requestedBy"] == MENTOR


async def test_support_endpoints_need_the_support_role(call: Call) -> None:
    _, submitted = await call("POST", SUBMIT, json={"batchId": BATCH})
    status, body = await call("GET", f"/v1/support/jobs/{submitted['result']['jobId']}/events")
    assert status == 403
    assert body["params"]["err"] == "NOT_SUPPORT"


async def test_unknown_routes_and_methods_answer_in_the_envelope(call: Call) -> None:
    status, body = await call("GET", "/v1/nothing-here")
    assert (status, body["responseCode"]) == (404, "RESOURCE_NOT_FOUND")
    status, body = await call("DELETE", SUBMIT)
    assert status == 405
    assert body["params"]["status"] == "failed"


async def test_a_tampered_or_expired_download_link_is_forbidden(
    call: Call, http, socket_url, worker, settings, hub
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        await call("POST", SUBMIT, json={"batchId": BATCH})
        ready = await next_event(ws, "report.completed")
    url = ready["downloadUrl"]
    base, query = url.split("?")
    params = dict(part.split("=") for part in query.split("&"))
    tampered = f"{base}?expires={int(params['expires']) + 60}&sig={params['sig']}"
    expired_at = int(time.time()) - 1
    from hub.storage import sign

    key = (await hub.app[HUB].jobs.get(ready["jobId"])).key
    expired = f"{base}?expires={expired_at}&sig={sign(settings.link_secret, ready['jobId'], key, expired_at)}"
    async with aiohttp.ClientSession() as anonymous:
        for link in (tampered, expired, base):
            async with anonymous.get(link) as response:
                assert response.status == 403
                assert (await response.json())["params"]["err"] == "LINK_EXPIRED"
        async with anonymous.get(url, headers={"Range": "bytes=0-2"}) as response:
            assert response.status == 206
            assert await response.read() == "\ufeff".encode()


async def test_a_ticket_works_once(http, socket_url) -> None:
    url = await socket_url()
    async with http.ws_connect(url):
        pass
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url)
    assert refused.value.status == 401


async def test_a_websocket_from_a_foreign_origin_is_refused(http, socket_url) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(await socket_url(), headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403


async def test_a_mentor_removed_from_the_batch_gets_no_fresh_links_to_its_reports(call: Call, settings) -> None:
    _, submitted = await call("POST", SUBMIT, json={"batchId": BATCH})
    with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
        conn.execute("DELETE FROM batch_mentors WHERE batch_id = ?", (BATCH,))
        conn.execute("UPDATE batches SET created_by = 'someone-else' WHERE batch_id = ?", (BATCH,))
    status, body = await call("GET", f"/v1/reports/jobs/{submitted['result']['jobId']}")
    assert (status, body["params"]["err"]) == (403, "NOT_A_MENTOR")
    _, listing = await call("GET", "/v1/reports/jobs")
    assert listing["result"]["jobs"] == []
