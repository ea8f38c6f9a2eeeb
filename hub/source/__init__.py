"""The report source: the courses, batches, participants and scores a report is made of.

SQLite is the embedded default; PostgreSQL is what real deployments point `SOURCE_URL` at. Both keep
the same tables (`schema.py`) and answer the same questions through `Source`.
"""

from __future__ import annotations

from hub.source.model import Batch, Source, SourceError

__all__ = ["Batch", "Source", "SourceError", "open_source"]


def open_source(url: str) -> Source:
    if url.startswith("sqlite:"):
        from hub.source.sqlite import SqliteSource

        return SqliteSource(url)
    from hub.source.postgres import PostgresSource

    return PostgresSource(url)
