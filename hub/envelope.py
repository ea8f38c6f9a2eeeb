"""Sunbird's response envelope, and the one exception type every handler raises for a client-facing error.

Portal code already parses Sunbird envelopes (`params.err`, `responseCode`), so every `/v1` answer,
errors included, has that shape.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

RESPONSE_CODES = {
    200: "OK",
    202: "OK",
    400: "CLIENT_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "RESOURCE_NOT_FOUND",
    405: "CLIENT_ERROR",
    409: "CONFLICT",
    429: "TOO_MANY_REQUESTS",
    500: "SERVER_ERROR",
    503: "SERVER_ERROR",
}


def iso(ms: int) -> str:
    """Sunbird's timestamps: UTC, milliseconds, a `Z`."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(int(datetime.now(UTC).timestamp() * 1000))


class HubError(Exception):
    """An error the caller can act on; `errmsg` is shown to people, `code` is for programs."""

    def __init__(self, status: int, code: str, errmsg: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(errmsg)
        self.status = status
        self.code = code
        self.errmsg = errmsg
        self.result = result or {}


def body(
    api_id: str,
    result: dict[str, Any],
    status: int = 200,
    err: str | None = None,
    errmsg: str | None = None,
) -> dict[str, Any]:
    return {
        "id": api_id,
        "ver": "v1",
        "ts": now_iso(),
        "params": {
            "resmsgid": str(uuid.uuid4()),
            "status": "failed" if err else "successful",
            "err": err,
            "errmsg": errmsg,
        },
        "responseCode": RESPONSE_CODES.get(status, "SERVER_ERROR" if status >= 500 else "CLIENT_ERROR"),
        "result": result,
    }


def respond(api_id: str, result: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body(api_id, result, status)), status=status, content_type="application/json")


def failure(api_id: str, error: HubError) -> web.Response:
    payload = body(api_id, error.result, error.status, error.code, error.errmsg)
    return web.Response(body=orjson.dumps(payload), status=error.status, content_type="application/json")


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    raw = await request.read()
    if not raw:
        raise HubError(400, "INVALID_REQUEST", "The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise HubError(400, "INVALID_JSON", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise HubError(400, "INVALID_REQUEST", "The request body must be a JSON object.")
    return data


def string_field(data: dict[str, Any], name: str, max_length: int = 200) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise HubError(400, "INVALID_REQUEST", f"'{name}' is required and must be a non-empty string.")
    if len(value) > max_length:
        raise HubError(400, "INVALID_REQUEST", f"'{name}' must be at most {max_length} characters.")
    return value.strip()
