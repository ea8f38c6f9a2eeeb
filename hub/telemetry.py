"""Sunbird telemetry v3: checking the events the page sends against the v3 schemas, and keeping them.

The JSON-lines files are the durable record, bounded in size. When `TELEMETRY_URL` is set, a forwarder
sends what they hold beyond a saved position, in batches, and moves the position only after the
endpoint accepted a batch: an endpoint that is down delays telemetry but loses none of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import orjson

from hub import errors, tasks
from hub.config import Settings

log = logging.getLogger(__name__)
MAX_EVENTS = 1000
FORWARD_BATCH = 200
FORWARD_EVERY = 2.0
FULL_RETRY_SECONDS = 60
SEGMENT_NUMBER = re.compile(r"[0-9]{1,9}")


# Sunbird telemetry v3: each event's `edata`, its required fields and the optional ones it may add
# (telemetry.sunbird.org, the v3 schemas). Other events are not for this hub.
EDATA: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "START": (("type",), ("dspec", "uaspec", "loc", "mode", "duration", "pageid")),
    "END": (("type",), ("mode", "duration", "pageid", "summary")),
    "IMPRESSION": (("type", "pageid", "uri"), ("subtype", "duration", "visits")),
    "INTERACT": (("type", "id"), ("subtype", "pageid", "target", "plugin", "extra")),
    "LOG": (("type", "level", "message"), ("pageid", "params")),
    "ERROR": (("err", "errtype", "stacktrace"), ("pageid", "object", "plugin")),
}
VERSION = "3.0"
BATCH_ID = "api.sunbird.telemetry"


def _require(event: dict[str, Any], path: str, kind: type | tuple[type, ...]) -> Any:
    value: Any = event
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, kind) or value == "" or isinstance(value, bool):
        raise ValueError(f"'{path}' is required")
    return value


def check_event(event: Any) -> None:
    """Raises ValueError naming the first field that is missing, of the wrong type, or not in the
    event's v3 schema."""
    if not isinstance(event, dict):
        raise ValueError("an event must be a JSON object")
    for path in ("eid", "ver", "mid", "actor.id", "actor.type", "context.channel", "context.env",
                 "context.pdata.id"):  # fmt: skip
        _require(event, path, str)
    _require(event, "ets", (int, float))
    if event["ver"] != VERSION:
        raise ValueError(f"'ver' must be '{VERSION}'")
    if event["eid"] not in EDATA:
        raise ValueError(f"'eid' must be one of {', '.join(EDATA)}")
    edata = _require(event, "edata", dict)
    required, optional = EDATA[event["eid"]]
    for name in required:
        _require(event, f"edata.{name}", str)
    unknown = sorted(set(edata) - set(required) - set(optional))
    if unknown:
        raise ValueError(f"'edata.{unknown[0]}' is not a field of {event['eid']} events")


def check_batch(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Sunbird's batch envelope (`id`, `ver`, `params.msgid`), then every event in it."""
    if batch.get("id") != BATCH_ID or batch.get("ver") != VERSION:
        raise errors.INVALID_TELEMETRY(detail=f"The batch must have 'id': '{BATCH_ID}' and 'ver': '{VERSION}'.")
    params = batch.get("params")
    if not isinstance(params, dict) or not isinstance(params.get("msgid"), str) or not params["msgid"]:
        raise errors.INVALID_TELEMETRY(detail="The batch must have 'params.msgid', a non-empty string.")
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


class Pending(NamedTuple):
    """Events to forward, where they end, and whether more are surely waiting (a rotated segment)."""

    events: list[dict[str, Any]]
    segment: int
    offset: int
    backlog: bool


class TelemetrySink:
    """Events are appended to TELEMETRY_PATH; past TELEMETRY_ROTATE_BYTES it is renamed to the next
    numbered segment (`telemetry.jsonl.1`, `.2`...). A segment's number is fixed before it is renamed
    (the active file is number last+1), so the forwarder's position, a (segment, offset) pair, stays
    true across a rotation. The forwarder deletes a segment once all of it was sent. Everything kept
    (segments, the active file, what was set aside) stays under TELEMETRY_MAX_BYTES: past it, new
    events are refused (503) rather than the disk filled."""

    def __init__(self, settings: Settings) -> None:
        self.path = Path(settings.telemetry_path)
        self._position_path = self.path.with_name(self.path.name + ".sent")
        self._rejected_path = self.path.with_name(self.path.name + ".rejected")
        self._rotate_bytes = settings.telemetry_rotate_bytes
        self._max_bytes = settings.telemetry_max_bytes
        self._url = settings.telemetry_url
        # Appending, rotating and reading for the forwarder take turns, so no read meets a rename.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def segments(self) -> dict[int, Path]:
        """The rotated segments by number, oldest first."""
        prefix = self.path.name + "."
        numbered = [(int(path.name[len(prefix) :]), path) for path in self.path.parent.glob(prefix + "*")
                    if SEGMENT_NUMBER.fullmatch(path.name[len(prefix) :])]  # fmt: skip
        return dict(sorted(numbered))

    def _active_number(self, segments: dict[int, Path]) -> int:
        return max(segments, default=0) + 1

    def _used_bytes(self) -> int:
        files = [self.path, self._rejected_path, *self.segments().values()]
        return sum(path.stat().st_size for path in files if path.exists())

    async def keep(self, events: list[dict[str, Any]]) -> None:
        lines = b"".join(orjson.dumps(e) + b"\n" for e in events)

        def append() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._used_bytes() + len(lines) > self._max_bytes:
                raise errors.TELEMETRY_FULL(retry_after=FULL_RETRY_SECONDS)
            with self.path.open("a+b") as out:
                # A process killed mid-append leaves a line without its end: end it, or the first event
                # written after it would be read as part of it, and skipped with it.
                size = out.seek(0, os.SEEK_END)
                torn = size > 0 and os.pread(out.fileno(), 1, size - 1) != b"\n"
                out.write(b"\n" + lines if torn else lines)
            if self.path.stat().st_size >= self._rotate_bytes:
                self.path.rename(self.path.with_name(f"{self.path.name}.{self._active_number(self.segments())}"))

        async with self._lock:
            await asyncio.to_thread(append)

    async def start(self) -> None:
        if self._url:
            self._task = asyncio.create_task(self._forward(), name="telemetry-forwarder")
            self._task.add_done_callback(_report_death)

    async def stop(self) -> None:
        if self._task:
            await tasks.stop(self._task)

    def _position(self, segments: dict[int, Path]) -> tuple[int, int]:
        """Where forwarding stands; with no saved position (or a segment that is gone), the oldest kept."""
        active = self._active_number(segments)
        oldest = min(segments, default=active)
        try:
            number, offset = (int(part) for part in self._position_path.read_text().split())
        except (OSError, ValueError):
            return oldest, 0
        return (number, offset) if oldest <= number <= active else (oldest, 0)

    def _pending(self) -> Pending:
        """Up to a batch of unsent events and the position just after them. A segment read to its end is
        deleted and the next one read. A line that does not parse (a process killed mid-append) is
        skipped, not allowed to stop every event after it."""
        while True:
            segments = self.segments()
            number, offset = self._position(segments)
            path = segments.get(number, self.path)
            events, offset = _read_lines(path, offset)
            if events or number not in segments:
                return Pending(events, number, offset, backlog=number in segments)
            path.unlink()  # a rotated segment, all of it sent
            self._position_path.write_text(f"{number + 1} 0")

    async def _pending_in_turn(self) -> Pending:
        async with self._lock:
            return await asyncio.to_thread(self._pending)

    async def _forward(self) -> None:
        delay = FORWARD_EVERY
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            while True:
                await asyncio.sleep(delay)
                pending = await self._pending_in_turn()
                events = pending.events
                if not events:
                    delay = FORWARD_EVERY
                    continue
                batch = {"id": BATCH_ID, "ver": VERSION, "params": {"msgid": str(uuid.uuid4())}, "events": events}
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
                await asyncio.to_thread(self._position_path.write_text, f"{pending.segment} {pending.offset}")
                delay = 0 if pending.backlog or len(events) == FORWARD_BATCH else FORWARD_EVERY

    def _reject(self, batch: dict[str, Any]) -> None:
        with self._rejected_path.open("ab") as out:
            out.write(orjson.dumps(batch) + b"\n")


def _read_lines(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Up to FORWARD_BATCH events from `path` after `offset`, and the offset after the last line read."""
    events: list[dict[str, Any]] = []
    if not path.exists():
        return events, offset
    with path.open("rb") as source:
        source.seek(offset)
        for line in source:
            if not line.endswith(b"\n"):
                break
            offset += len(line)
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                log.warning("skipping a telemetry line that is not JSON at offset %d of %s", offset - len(line), path)
            if len(events) == FORWARD_BATCH:
                break
    return events, offset
