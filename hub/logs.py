"""How the hub and its workers log: one JSON object a line for machines (`LOG_FORMAT=json`, the default of
`hub serve` and `hub worker`), plain lines for people at a terminal (`text`, the default of the other
commands). Each line carries what is known of its context: the request's id, the user's id, the job's id.

Every line, tracebacks included, passes through `redact` last: no token, ticket, link signature or
password leaves the process.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from hub.redact import redact

FORMATS = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The context fields a line may carry, by their names in the JSON.
FIELDS = ("requestId", "userId", "jobId")
# A caller's own request id is kept when it is short and plain, so a trace crosses the portal and the hub.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

_context: ContextVar[dict[str, str] | None] = ContextVar("hub_log_context", default=None)


@contextlib.contextmanager
def bound(**fields: str) -> Iterator[dict[str, str]]:
    """Adds `fields` to every line logged inside the block (in this task), and gives the mapping, so more
    can be added as they become known (the user, once the token is verified)."""
    context = {**(_context.get() or {}), **fields}
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


def bind(**fields: str) -> None:
    """Adds `fields` to the lines of the block `bound` opened in this task (nothing outside one)."""
    context = _context.get()
    if context is not None:
        context.update(fields)


def request_id(offered: str | None) -> str:
    return offered if offered and REQUEST_ID.match(offered) else uuid.uuid4().hex


def _fields(record: logging.LogRecord) -> dict[str, str]:
    known = {**(_context.get() or {})}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value:
            known[name] = value
    return known


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            **_fields(record),
        }
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{name}={value}" for name, value in _fields(record).items())
        text = super().format(record)
        return redact(f"{text} [{context}]" if context else text)


def setup(log_format: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
