"""The portal and the mobile webview call the hub from their own origins."""

from __future__ import annotations

import aiohttp
import pytest

from tests.helpers import Call

PORTAL = "https://diksha.gov.in"


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "ALLOWED_ORIGINS": f"{PORTAL},https://staging.diksha.gov.in"}


async def test_a_listed_origins_preflight_is_answered(http: aiohttp.ClientSession) -> None:
    headers = {"Origin": PORTAL, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization, content-type"}  # fmt: skip
    async with http.options("/v1/reports/course-progress", headers=headers) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == PORTAL
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


async def test_a_listed_origin_can_read_answers_and_errors(call: Call, http: aiohttp.ClientSession, token) -> None:
    for user, expected in ((token(), 200), ("not-a-token", 401)):
        headers = {"Origin": PORTAL, "Authorization": f"Bearer {user}"}
        async with http.get("/v1/mentor/batches", headers=headers) as response:
            assert response.status == expected
            assert response.headers["Access-Control-Allow-Origin"] == PORTAL


async def test_the_client_module_can_be_imported_by_a_listed_origin(http: aiohttp.ClientSession) -> None:
    async with http.get("/web/hub-client.js", headers={"Origin": PORTAL}) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == PORTAL


async def test_an_unlisted_origin_gets_no_cross_origin_access(http: aiohttp.ClientSession, token) -> None:
    headers = {"Origin": "https://evil.example", "Authorization": f"Bearer {token()}"}
    async with http.get("/v1/mentor/batches", headers=headers) as response:
        assert "Access-Control-Allow-Origin" not in response.headers
