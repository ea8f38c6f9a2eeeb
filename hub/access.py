"""Who may act on a batch: its mentors and its creator, checked on the server for every batch-scoped call,
including reads of report jobs (a mentor removed from a batch gets no fresh links to its data)."""

from __future__ import annotations

from hub import errors, ids
from hub.identity import Principal
from hub.source import Batch, Source


async def batch_for(source: Source, who: Principal, batch_id: str) -> Batch:
    batch = await source.batch(ids.batch_id(batch_id))
    if batch is None:
        raise errors.BATCH_NOT_FOUND(batch_id=batch_id)
    if not batch.allows(who.user_id):
        raise errors.NOT_A_MENTOR()
    return batch
