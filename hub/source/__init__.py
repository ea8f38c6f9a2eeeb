"""The report source: the courses, batches, participants and scores a report is made of.

SQLite is the embedded default; PostgreSQL is what real deployments point `SOURCE_URL` at. Both keep
the same tables (`schema.py`) and answer the same questions through `Source`.
"""

from __future__ import annotations

from hub.source.model import Batch, Source, SourceError, SourceUnavailable, retrying

__all__ = ["Batch", "Source", "SourceError", "SourceUnavailable", "open_source", "retrying"]


def open_source(url: str, timeout: float | None = None) -> Source:
    """`timeout` bounds each PostgreSQL statement and the wait for a connection (`SOURCE_TIMEOUT`);
    seeding passes none, since loading a million rows is one long statement."""
    if url.startswith("sqlite:"):
        from hub.source.sqlite import SqliteSource

        return SqliteSource(url)
    from hub.source.postgres import PostgresSource

    return PostgresSource(url, timeout)
