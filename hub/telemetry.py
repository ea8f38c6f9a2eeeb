"""Sunbird telemetry v3: checking the events the page sends, and keeping them.

The JSON-lines file is the durable record. When `TELEMETRY_URL` is set, a forwarder sends what the
file holds beyond a saved offset, in batches, and moves the offset only after the endpoint accepted a
batch: an endpoint that is down delays telemetry but loses none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from hub import errors
from hub.config import Settings

log = logging.getLogger(__name__)
MAX_EVENTS = 1000
FORWARD_BATCH = 200
FORWARD_EVERY = 2.0


def _require(event: dict[str, Any], path: str, kind: type | tuple[type, ...]) -> Any:
    value: Any = event
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, kind) or value == "":
        raise ValueError(f"'{path}' is required")
    return value


def check_event(event: Any) -> None:
    """Raises ValueError naming the first required field that is missing or of the wrong type."""
    if not isinstance(event, dict):
        raise ValueError("an event must be a JSON object")
    for path in ("eid", "ver", "mid", "actor.id", "actor.type", "context.channel", "context.env",
                 "context.pdata.id"):  # fmt: skip
        _require(event, path, str)
    _require(event, "ets", (int, float))
    _require(event, "edata", dict)
    if event["eid"] == "INTERACT":
        _require(event, "edata.type", str)
        _require(event, "edata.id", str)


def check_batch(batch: dict[str, Any]) -> list[dict[str, Any]]:
    events = batch.get("events")
    if not isinstance(events, list) or not events:
        raise errors.INVALID_TELEMETRY(detail="'events' must be a non-empty list of telemetry events.")
    if len(events) > MAX_EVENTS:
        raise errors.INVALID_TELEMETRY(detail=f"Send at most {MAX_EVENTS} events in one batch.")
    for index, event in enumerate(events):
        try:
            check_event(event)
        except ValueError as exc:
            raise errors.INVALID_TELEMETRY(detail=f"Event {index}: {exc}.") from None
    return events


def refused_for_good(status: int) -> bool:
    """A 4xx other than 429 means the batch itself is wrong: retrying cannot help."""
    return 400 <= status < 500 and status != 429


def _report_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the telemetry forwarder stopped", exc_info=task.exception())


class TelemetrySink:
    def __init__(self, settings: Settings) -> None:
        self.path = Path(settings.telemetry_path)
        self._offset_path = self.path.with_name(self.path.name + ".sent")
        self._rejected_path = self.path.with_name(self.path.name + ".rejected")
        self._url = settings.telemetry_url
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def keep(self, events: list[dict[str, Any]]) -> None:
        lines = b"".join(orjson.dumps(e) + b"\n" for e in events)

        def append() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as out:
                out.write(lines)

        async with self._lock:
            await asyncio.to_thread(append)

    async def start(self) -> None:
        if self._url:
            self._task = asyncio.create_task(self._forward(), name="telemetry-forwarder")
            self._task.add_done_callback(_report_death)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _pending(self) -> tuple[list[dict[str, Any]], int]:
        """Up to a batch of unsent events and the offset just after them. A line that does not parse (a
        process killed mid-append) is skipped, not allowed to stop every event after it."""
        offset = int(self._offset_path.read_text() or 0) if self._offset_path.exists() else 0
        if not self.path.exists():
            return [], offset
        with self.path.open("rb") as source:
            source.seek(offset)
            events = []
            for line in source:
                if not line.endswith(b"\n"):
                    break
                offset += len(line)
                try:
                    events.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    log.warning("skipping a telemetry line that is not JSON at offset %d", offset - len(line))
                if len(events) == FORWARD_BATCH:
                    break
        return events, offset

    async def _forward(self) -> None:
        delay = FORWARD_EVERY
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            while True:
                await asyncio.sleep(delay)
                events, offset = await asyncio.to_thread(self._pending)
                if not events:
                    delay = FORWARD_EVERY
                    continue
                batch = {"id": "api.sunbird.telemetry", "ver": "3.0", "params": {"msgid": str(uuid.uuid4())},
                         "events": events}  # fmt: skip
                try:
                    async with session.post(str(self._url), json=batch) as response:
                        if refused_for_good(response.status):
                            # Sending it again would be refused again and hold back every later event.
                            log.error("telemetry endpoint rejected a batch (%s); kept in %s", response.status,
                                      self._rejected_path)  # fmt: skip
                            await asyncio.to_thread(self._reject, batch)
                        else:
                            response.raise_for_status()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    delay = min(delay * 2, 60.0)
                    log.warning("telemetry endpoint refused a batch (%s); retrying in %.0fs", exc, delay)
                    continue
                await asyncio.to_thread(self._offset_path.write_text, str(offset))
                delay = 0 if len(events) == FORWARD_BATCH else FORWARD_EVERY

    def _reject(self, batch: dict[str, Any]) -> None:
        with self._rejected_path.open("ab") as out:
            out.write(orjson.dumps(batch) + b"\n")
