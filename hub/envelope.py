"""Sunbird's response envelope, for answers and for errors (`hub.errors`).

Portal code already parses Sunbird envelopes (`params.err`, `responseCode`), so every `/v1` answer,
errors included, has that shape.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from hub import errors
from hub.errors import HubError

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


def response_code(status: int) -> str:
    return RESPONSE_CODES.get(status, "SERVER_ERROR" if status >= 500 else "CLIENT_ERROR")


def iso(ms: int) -> str:
    """Sunbird's timestamps: UTC, milliseconds, a `Z`."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_or_none(ms: int | None) -> str | None:
    """A job's time that may not have come yet (started, completed): unset is `null`, not the epoch."""
    return iso(ms) if ms else None


def now_iso() -> str:
    return iso(int(datetime.now(UTC).timestamp() * 1000))


def payload(
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
        "responseCode": response_code(status),
        "result": result,
    }


def respond(api_id: str, result: dict[str, Any], status: int = 200) -> web.Response:
    answer = payload(api_id, result, status)
    return web.Response(body=orjson.dumps(answer), status=status, content_type="application/json")


def failure(api_id: str, error: HubError) -> web.Response:
    answer = payload(api_id, error.result, error.status, error.code, error.errmsg)
    return web.Response(
        body=orjson.dumps(answer), status=error.status, content_type="application/json", headers=error.headers
    )


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it (the data-exhaust routes
    answer it in their own envelope, so it is a `HubError` here rather than aiohttp's 413)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.REQUEST_TOO_LARGE(limit=request.client_max_size) from None
    if not raw:
        raise errors.EMPTY_BODY()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.INVALID_JSON() from None
    if not isinstance(data, dict):
        raise errors.NOT_AN_OBJECT()
    return data


def string_field(data: dict[str, Any], name: str, max_length: int = 200) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise errors.FIELD_REQUIRED(name=name)
    if len(value) > max_length:
        raise errors.FIELD_TOO_LONG(name=name, limit=max_length)
    return value.strip()


def optional_string(data: dict[str, Any], name: str, max_length: int = 200) -> str | None:
    """A field that may be left out, but is a real string when it is there."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise errors.FIELD_NOT_A_STRING(name=name, limit=max_length)
    return value
