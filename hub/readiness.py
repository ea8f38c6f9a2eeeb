"""/readyz's outcome, kept for a moment. Load balancers and orchestrators probe every instance every few
seconds, and anyone can call it; one round of checks pings Redis, queries the source and lists the
bucket, so a flood of probes must cost those services one round per interval, not one per probe."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

# Short enough that an outage (or the end of one) shows at the next probe; long enough that a flood of
# probes makes one round of checks a second.
READY_CACHE_SECONDS = 1.0
Outcome = dict[str, str | int]


class Readiness:
    def __init__(self, keep_seconds: float = READY_CACHE_SECONDS) -> None:
        self._keep_seconds = keep_seconds
        self._lock = asyncio.Lock()
        self._checked_at = -math.inf
        self._outcome: Outcome = {}

    async def outcome(self, check: Callable[[], Awaitable[Outcome]]) -> Outcome:
        """The last round's outcome while it is fresh; otherwise one probe checks while the others wait for
        its outcome (rather than each starting a round of its own)."""
        async with self._lock:
            if time.monotonic() - self._checked_at >= self._keep_seconds:
                self._outcome = await check()
                self._checked_at = time.monotonic()
            return self._outcome
