"""One call's status, whatever the route: a socket or stream that opens is closed at once, and every
other `/v1` answer but the OpenAPI document must be in the envelope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp


async def status_of(
    http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], body: Any = None
) -> int:
    return (await answer_of(http, method, url, headers, body))[0]


async def answer_of(
    http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Mapping[str, str]]:
    """The call's status and headers."""
    if url.endswith("/ws"):
        try:
            async with http.ws_connect(url, headers=headers):
                return 101, {}
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status, refused.headers or {}
    async with http.request(method, url, headers=headers, json=body) as response:
        opened_stream = url.endswith("/stream") and response.status == 200
        enveloped = "/v1/" in url and not url.endswith("/openapi.json")  # the document, as tools read it
        if enveloped and not opened_stream:
            envelope = await response.json()
            assert envelope["params"]["status"] in ("successful", "failed"), f"{method} {url}: not the envelope"
        return response.status, response.headers
