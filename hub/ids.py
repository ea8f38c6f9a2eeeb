"""What an id from outside (a path, a query, a body, a header) must look like before it is used in a
Redis key, a file path or a query.

Patterns are ASCII on purpose: Python's `\\d` and `str.isdigit()` accept other scripts' digits (U+0661, `²`),
which `int()` then misreads or rejects with an exception, and `$` matches before a trailing newline;
`fullmatch` of an ASCII class has neither surprise.
"""

from __future__ import annotations

import re

from hub import errors

# Sunbird's batch ids are digits; course and content ids look like `do_2139...`; tests use `batch-0001`.
BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# Job ids are made by the hub: `uuid4().hex`.
JOB_ID = re.compile(r"[0-9a-f]{32}")
# A Redis stream id: milliseconds and a sequence number, each at most 20 digits (64 bits).
EVENT_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
# A link's expiry, in seconds since 1970: twelve digits last until the year 33658.
EXPIRES = re.compile(r"[0-9]{1,12}")


def batch_id(value: str) -> str:
    if not BATCH_ID.fullmatch(value):
        raise errors.INVALID_ID(name="batchId")
    return value


def job_id(value: str) -> str:
    if not JOB_ID.fullmatch(value):
        raise errors.INVALID_ID(name="jobId")
    return value
