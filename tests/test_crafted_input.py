"""Values crafted to break parsing (a newline after an id, digits of other scripts, a superscript two,
a signature that is not ASCII, an origin that is not a URL) get a 4xx in the envelope, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from hub import keys
from tests.helpers import Call, next_event

ARABIC_INDIC_ONE = "\u0661"
JOB = "0a" * 16

CRAFTED = [
    ("GET", "/v1/notifications?after=1-1%0A", 400, "INVALID_EVENT_ID"),
    ("GET", f"/v1/notifications?after={ARABIC_INDIC_ONE}-{ARABIC_INDIC_ONE}", 400, "INVALID_EVENT_ID"),
    ("GET", "/v1/notifications?after=%C2%B2-1", 400, "INVALID_EVENT_ID"),
    ("GET", "/v1/notifications/stream?lastEventId=1-1%0A", 400, "INVALID_EVENT_ID"),
    ("GET", "/v1/batches/batch-0001%0A/dashboard", 400, "INVALID_ID"),
    ("GET", f"/v1/batches/{ARABIC_INDIC_ONE}/dashboard", 400, "INVALID_ID"),
    ("GET", f"/v1/batches/{'1' * 101}/dashboard", 400, "INVALID_ID"),
    ("GET", "/v1/reports/jobs?batchId=batch-0001%00", 400, "INVALID_ID"),
    ("GET", "/v1/reports/jobs/..%2F..%2Fetc", 400, "INVALID_ID"),
    ("GET", f"/v1/reports/jobs/{JOB}%0A", 400, "INVALID_ID"),
    ("GET", f"/files/{JOB.upper()}?expires=1&sig=x", 400, "INVALID_ID"),
]


@pytest.mark.parametrize(("method", "path", "status", "code"), CRAFTED, ids=[path for _, path, _, _ in CRAFTED])
async def test_a_crafted_value_gets_a_client_error_in_the_envelope(
    call: Call, method: str, path: str, status: int, code: str
) -> None:
    answered, body = await call(method, path)
    assert (answered, body["params"]["err"]) == (status, code)


async def test_a_batch_id_that_is_not_ascii_is_refused_before_the_source_is_asked(call: Call) -> None:
    status, body = await call("POST", "/v1/reports/course-progress", json={"batchId": f"batch-000{ARABIC_INDIC_ONE}"})
    assert (status, body["params"]["err"]) == (400, "INVALID_ID")


async def test_a_crafted_download_link_is_forbidden(call: Call, http, socket_url: Callable[..., Any], worker) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        await call("POST", "/v1/reports/course-progress", json={"batchId": "batch-0001"})
        ready = await next_event(ws, "report.completed")
    base, _, query = ready["downloadUrl"].partition("?")
    params = dict(part.split("=") for part in query.split("&"))
    crafted = [
        {"expires": "²", "sig": params["sig"]},
        {"expires": ARABIC_INDIC_ONE * 10, "sig": params["sig"]},
        {"expires": params["expires"] + "\n", "sig": params["sig"]},
        {"expires": "9" * 400, "sig": params["sig"]},
        {"expires": params["expires"], "sig": "é" + params["sig"][1:]},
        {"expires": params["expires"], "sig": ""},
    ]
    async with aiohttp.ClientSession() as anonymous:
        for query_params in crafted:
            async with anonymous.get(base, params=query_params) as response:
                assert (response.status, (await response.json())["params"]["err"]) == (403, "LINK_EXPIRED")
        async with anonymous.get(base, params=params) as response:
            assert response.status == 200


async def test_an_origin_that_is_not_a_url_is_refused(http, socket_url: Callable[..., Any]) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(await socket_url(), headers={"Origin": "http://["})
    assert refused.value.status == 403


async def test_a_ticket_that_is_not_ascii_is_refused(http) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect("/v1/notifications/ws?ticket=%C3%A9%0A")
    assert refused.value.status == 401


async def test_a_page_file_name_too_long_for_the_file_system_is_not_found(http) -> None:
    async with http.get(f"/web/{'a' * 300}.js") as response:
        assert response.status == 404


def test_no_two_user_and_batch_pairs_share_a_key() -> None:
    """Ids joined with `:` would collide: user `a` with batch `b:c` and user `a:b` with batch `c`."""
    assert keys.guard("a", "b:c") != keys.guard("a:b", "c")
    assert keys.user_of_channel(keys.user_channel("f:realm:a*b")) == "f:realm:a*b"
