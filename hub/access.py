"""Who may act on a batch: its mentors and its creator, checked on the server for every batch-scoped call,
including reads of report jobs (a mentor removed from a batch gets no fresh links to its data)."""

from __future__ import annotations

from collections.abc import Iterable

from hub import errors, ids
from hub.identity import Principal
from hub.source import Batch, Source


async def batch_for(source: Source, who: Principal, batch_id: str, roles: frozenset[str] = frozenset()) -> Batch:
    """The batch, if the caller mentors or created it, or holds one of `roles` (the data-exhaust API lets
    the admin roles Sunbird allows for on-demand reports in too)."""
    batch = await source.batch(ids.batch_id(batch_id))
    if batch is None:
        raise errors.BATCH_NOT_FOUND(batch_id=batch_id)
    if not may_see(batch, who, roles):
        raise errors.NOT_A_MENTOR()
    return batch


def may_see(batch: Batch, who: Principal, roles: frozenset[str] = frozenset()) -> bool:
    return batch.allows(who.user_id) or bool(who.roles & roles)


async def visible_batches(
    source: Source, who: Principal, batch_ids: Iterable[str], roles: frozenset[str] = frozenset()
) -> set[str]:
    """Which of the batches the caller may see, each looked up once: for lists of jobs and requests."""
    seen = set()
    for batch_id in set(batch_ids):
        batch = await source.batch(batch_id)
        if batch is not None and may_see(batch, who, roles):
            seen.add(batch_id)
    return seen
