"""A report job as every part of the hub sees it: a frozen record with a status, decoded from its Redis
hash in one place (`Job.decode`), so routes, worker, sweeper and support never read raw fields.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

CSV = ".csv"
ZIP = ".zip"
# A job's short reference, for a mentor to read out over the phone: no 0/O, 1/I/L or U/V look-alikes.
REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
REF_LENGTH = 8


def job_ref(job_id: str) -> str:
    """The job's reference, drawn from its id, so every part that knows a job id knows its reference without
    storing or looking it up; any two jobs share one with a chance of 1 in 5*10^11, and a search by it
    then shows both."""
    number = int.from_bytes(hashlib.blake2b(job_id.encode(), digest_size=8).digest())
    letters = []
    for _ in range(REF_LENGTH):
        number, digit = divmod(number, len(REF_ALPHABET))
        letters.append(REF_ALPHABET[digit])
    return "".join(letters)


class Status(StrEnum):
    SUBMITTED = "SUBMITTED"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"

    @property
    def ended(self) -> bool:
        return self in (Status.SUCCESS, Status.FAILED)


@dataclass(frozen=True)
class Job:
    job_id: str
    batch_id: str
    course_id: str
    requested_by: str
    status: Status
    submitted_at: int  # epoch milliseconds on Redis's clock; the other times are the worker's, for people
    file_name: str
    started_at: int | None = None
    completed_at: int | None = None
    rows: int | None = None
    bytes: int | None = None
    error: str | None = None
    key: str | None = None  # where the run that succeeded stored the file

    @classmethod
    def decode(cls, record: dict[bytes, bytes]) -> Job | None:
        """The job in a Redis hash, or None for an empty one (a job that does not exist, or expired)."""
        if not record:
            return None
        raw = {name.decode(): value.decode() for name, value in record.items()}

        def number(name: str) -> int | None:
            return int(raw[name]) if raw.get(name) else None

        return cls(
            job_id=raw["jobId"],
            batch_id=raw["batchId"],
            course_id=raw["courseId"],
            requested_by=raw["requestedBy"],
            status=Status(raw["status"]),
            submitted_at=int(raw["submittedAt"]),
            file_name=raw["fileName"],
            started_at=number("startedAt"),
            completed_at=number("completedAt"),
            rows=number("rows"),
            bytes=number("bytes"),
            error=raw.get("error") or None,
            key=raw.get("key") or None,
        )

    def encode(self) -> dict[str, str]:
        """The fields a job's hash starts with (and is restored from, should Redis lose it); later changes
        are written by `Jobs.transition`."""
        return {
            "jobId": self.job_id,
            "batchId": self.batch_id,
            "courseId": self.course_id,
            "requestedBy": self.requested_by,
            "status": self.status.value,
            "submittedAt": str(self.submitted_at),
            "fileName": self.file_name,
        }

    @property
    def ref(self) -> str:
        return job_ref(self.job_id)

    @property
    def protected(self) -> bool:
        """A password-protected report: a ZIP holding the CSV."""
        return self.file_name.endswith(ZIP)

    @property
    def csv_name(self) -> str:
        """The CSV's own name, inside the ZIP of a protected report."""
        return self.file_name.removesuffix(ZIP) + CSV if self.protected else self.file_name

    def run_key(self) -> str:
        """Where one run of the job writes its file: a key of its own, so a run that loses a race can only
        ever delete its own file, never the one the mentor was sent."""
        return f"reports/{self.batch_id}/{self.job_id}/{uuid.uuid4().hex[:8]}/{self.file_name}"


def file_name(batch_id: str, when_ms: int, zone: ZoneInfo, protected: bool = False) -> str:
    """Named by the day of the click where the mentor is, not in UTC (05:29 in India is still yesterday there)."""
    return f"{batch_id}_progress_{datetime.fromtimestamp(when_ms / 1000, zone):%Y%m%d}" + (ZIP if protected else CSV)


class Secret:
    """A report's password on its way to the worker, in the arq job's arguments only: arq logs a job's
    arguments by their repr, and this one's shows nothing."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret(***)"
