"""One call's status, whatever the route: a socket or stream that opens is closed at once, and every
other `/v1` answer but the OpenAPI document must be in the envelope."""

from __future__ import annotations

from typing import Any

import aiohttp


async def status_of(
    http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], body: Any = None
) -> int:
    if url.endswith("/ws"):
        try:
            async with http.ws_connect(url, headers=headers):
                return 101
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status
    async with http.request(method, url, headers=headers, json=body) as response:
        opened_stream = url.endswith("/stream") and response.status == 200
        if "/v1/" in url and not opened_stream and not url.endswith("/openapi.json"):  # the document, as tools read it
            envelope = await response.json()
            assert envelope["params"]["status"] in ("successful", "failed"), f"{method} {url}: not the envelope"
        return response.status
