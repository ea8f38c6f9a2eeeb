"""Stopping a background task for certain, so a hub or a worker that is told to stop does stop.

On Python 3.11, `asyncio.wait_for` drops a cancellation that lands in the same turn of the event loop as
the result it waits for, and returns that result; redis-py 5 sends every command of a client with a
socket timeout (the hub's) through `wait_for`. So a task that loops over Redis commands (the sweeper, a
socket's lease) now and then shrugs off `cancel()` and carries on, and whoever awaits it waits forever:
a shutdown that never ends. Python 3.12's `wait_for` keeps the cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

# How long a cancelled task has to end before it is cancelled again. A cancellation that was not dropped
# ends it at its next await, far sooner; this leaves room for its own clean-up (closing a connection).
CANCEL_AGAIN_AFTER_SECONDS = 0.2


async def stop(task: asyncio.Task[Any]) -> None:
    """Cancels `task`, again if it carried on, until it has ended; an exception it ended with is raised."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_AGAIN_AFTER_SECONDS)
    with contextlib.suppress(asyncio.CancelledError):
        await task
