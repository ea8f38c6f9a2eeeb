"""Behind Sunbird's gateway: the portal's proxy sends the user's token in `x-authenticated-user-token`
and its own Kong key in `Authorization`; every /v1 route takes the user from the first and never from
the second, and refuses a request whose `X-Authenticated-Userid` is someone else."""

from __future__ import annotations

from collections.abc import Callable

import jwt
import pytest

from tests.helpers import MENTOR, Call, next_sse_event

BATCH = "batch-0001"
# What the portal puts in `Authorization`: Kong's consumer JWT, signed with a key the hub does not hold.
KONG_KEY = jwt.encode({"iss": "portal-consumer-key"}, "kong-consumer-secret-not-the-hubs-own", algorithm="HS256")


@pytest.fixture
def gateway(token: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """The headers the portal's `decorateRequestHeaders` sends for `user`."""

    def headers(user: str = MENTOR, claimed: str | None = None, **extra: str) -> dict[str, str]:
        return {
            "x-authenticated-user-token": token(user),
            "X-Authenticated-Userid": claimed or user,
            "X-Channel-Id": "channel-1",
            "X-App-Id": "prod.diksha.portal",
            "Authorization": f"Bearer {KONG_KEY}",
            **extra,
        }

    return headers


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/mentor/batches"),
        ("GET", f"/v1/batches/{BATCH}/dashboard"),
        ("POST", "/v1/notifications/ticket"),
        ("GET", "/v1/notifications"),
        ("GET", f"/v1/reports/jobs?batchId={BATCH}"),
    ],
)
async def test_every_user_route_takes_the_user_from_the_gateway_header(call: Call, gateway, method, path) -> None:
    status, body = await call(method, path, user=None, headers=gateway())
    assert (status, body["params"]["status"]) == (200, "successful")


async def test_a_click_behind_the_gateway_makes_a_job_for_the_token_user(call: Call, gateway) -> None:
    status, body = await call(
        "POST", "/v1/reports/course-progress", user=None, headers=gateway(), json={"batchId": BATCH}
    )
    assert status == 202
    _, job = await call("GET", f"/v1/reports/jobs/{body['result']['jobId']}")
    assert job["result"]["requestedBy"] == MENTOR


async def test_a_gateway_token_may_come_as_a_bearer_value(call: Call, gateway, token) -> None:
    headers = gateway(**{"x-authenticated-user-token": f"Bearer {token(MENTOR)}"})
    assert (await call("GET", "/v1/mentor/batches", user=None, headers=headers))[0] == 200


async def test_with_the_gateway_header_a_valid_authorization_is_not_taken_for_the_user(
    call: Call, gateway, token
) -> None:
    headers = gateway(**{"x-authenticated-user-token": "not-a-jwt", "Authorization": f"Bearer {token(MENTOR)}"})
    status, body = await call("GET", "/v1/mentor/batches", user=None, headers=headers)
    assert (status, body["params"]["err"]) == (401, "UNAUTHORIZED")


async def test_a_user_header_naming_someone_else_is_refused(call: Call, gateway) -> None:
    status, body = await call("POST", "/v1/notifications/ticket", user=None, headers=gateway(claimed="mentor-0002"))
    assert (status, body["responseCode"]) == (401, "UNAUTHORIZED")
    assert "X-Authenticated-Userid" in body["params"]["errmsg"]


async def test_a_user_header_beside_a_bearer_token_must_match_it_too(call: Call) -> None:
    status, _ = await call("GET", "/v1/mentor/batches", headers={"X-Authenticated-Userid": "mentor-0002"})
    assert status == 401


async def test_an_expired_gateway_token_is_told_to_sign_in_again(call: Call, gateway, token) -> None:
    headers = gateway(**{"x-authenticated-user-token": token(MENTOR, ttl=-60)})
    status, body = await call("GET", "/v1/notifications", user=None, headers=headers)
    assert (status, body["params"]["err"]) == (401, "TOKEN_EXPIRED")


async def test_the_gateway_key_alone_is_no_user(call: Call) -> None:
    status, _ = await call("GET", "/v1/mentor/batches", user=None, headers={"Authorization": f"Bearer {KONG_KEY}"})
    assert status == 401


async def test_a_stream_opened_behind_the_gateway_carries_the_users_events(http, call: Call, gateway) -> None:
    async with http.get("/v1/notifications/stream", headers=gateway()) as stream:
        assert stream.status == 200
        await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        event = await next_sse_event(stream)
    assert '"type":"report.submitted"' in event and '"messageKey":"hub.report.submitted"' in event
