"""What every report source is and answers: a batch, the `Source` protocol, its error, and the shaping of
its answers that does not depend on the database."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol, TypeVar
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_RETRY, LAST_RETRY = 0.25, 5.0


class SourceError(Exception):
    """The source cannot answer (unreachable, missing file, broken rows); the message says why."""


class SourceUnavailable(SourceError):
    """A failure that passes: the server restarting, a dropped connection, a statement that timed out.
    Worth another try, where a missing table or a malformed URL is not."""


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    deadline: float,
    what: str,
    transient: tuple[type[BaseException], ...] = (SourceUnavailable,),
) -> T:
    """Runs `attempt` again, after a growing pause, while it fails with a `transient` error (by default: the
    source is only unavailable) and the next try would still start before `deadline` (the event loop's
    clock): a PostgreSQL restart costs a report a few seconds instead of the report. The pause is jittered
    so that the workers of a fleet do not all come back to a restarted server in the same instant."""
    loop = asyncio.get_running_loop()
    pause = FIRST_RETRY
    while True:
        try:
            return await attempt()
        except transient as exc:
            wait = pause * random.uniform(0.5, 1.0)
            if loop.time() + wait >= deadline:
                raise
            log.warning("%s: %s; trying again in %.1f s", what, exc, wait)
        await asyncio.sleep(wait)
        pause = min(pause * 2, LAST_RETRY)


@dataclass(frozen=True)
class Batch:
    batch_id: str
    course_id: str
    course_name: str
    name: str
    status: int
    start_date: str | None
    end_date: str | None
    created_by: str
    mentors: frozenset[str] = field(default_factory=frozenset)

    def allows(self, user_id: str) -> bool:
        return user_id == self.created_by or user_id in self.mentors


class Source(Protocol):
    async def check(self) -> None: ...

    async def batch(self, batch_id: str) -> Batch | None: ...

    async def mentor_batches(self, user_id: str) -> list[dict[str, Any]]: ...

    async def dashboard(self, batch_id: str) -> dict[str, Any]: ...

    async def assessments(self, course_id: str) -> list[str]: ...

    async def participant_count(self, batch_id: str) -> int: ...

    async def user_name(self, user_id: str) -> str | None:
        """The user's name, for support staff to greet a mentor by; nothing else about them."""
        ...

    async def part_bounds(self, batch_id: str, parts: int) -> list[str]:
        """`parts - 1` user ids that split the batch into parts of equal size, in report order."""
        ...

    async def write_csv(
        self, batch_id: str, assessments: Sequence[str], lower: str, upper: str, out: BinaryIO, zone: ZoneInfo
    ) -> int:
        """Writes the report rows of participants `lower <= user_id < upper` to `out`, streaming, with
        instants shown as days in `zone`; returns how many rows it wrote."""
        ...

    async def insert(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> int: ...

    async def analyze(self) -> None:
        """Refreshes the planner's statistics after a bulk load, so the first report gets a good plan."""
        ...

    async def close(self) -> None: ...


def summarize(totals: Sequence[Any], buckets: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    """The dashboard figures from the two aggregate queries, the same for every source."""
    enrolled, completed, in_progress, average, certificates = totals
    histogram = [0] * 10
    for bucket, count in buckets:
        histogram[int(bucket)] = int(count)
    enrolled = int(enrolled or 0)
    completed = int(completed or 0)
    in_progress = int(in_progress or 0)
    return {
        "enrolled": enrolled,
        "completed": completed,
        "inProgress": in_progress,
        "notStarted": enrolled - completed - in_progress,
        "averageProgress": round(float(average or 0), 1),
        "certificatesIssued": int(certificates or 0),
        "histogram": histogram,
    }


def batch_row(row: Sequence[Any]) -> dict[str, Any]:
    batch_id, course_id, course_name, name, status, start, end, count = row
    return {
        "batchId": batch_id,
        "courseId": course_id,
        "courseName": course_name,
        "name": name,
        "status": int(status),
        "startDate": start,
        "endDate": end,
        "participantCount": int(count),
    }
