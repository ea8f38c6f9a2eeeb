"""Per-user budgets: a client stuck in a loop gets 429 in the envelope; other users are not affected."""

from __future__ import annotations

import pytest

from tests.helpers import Call


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "RATE_LIMIT": "3"}


async def test_a_client_over_its_budget_gets_too_many_requests(call: Call) -> None:
    statuses = [(await call("POST", "/v1/notifications/ticket"))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    _, body = await call("POST", "/v1/notifications/ticket")
    assert body["responseCode"] == "TOO_MANY_REQUESTS"
    assert body["params"]["err"] == "TOO_MANY_REQUESTS"


async def test_one_users_budget_does_not_limit_another(call: Call) -> None:
    for _ in range(4):
        await call("POST", "/v1/notifications/ticket")
    status, _ = await call("POST", "/v1/notifications/ticket", user="someone-else")
    assert status == 200
