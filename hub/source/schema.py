"""The report source's tables and the report query, written once for SQLite and PostgreSQL.

The CSV's formatting (dates, the progress rule, the formula guard) is done in SQL: it costs the
database almost nothing, while the same work per cell in Python is what makes a million rows slow.
Everything but the reading of dates is spelled with functions both databases share (`substr`, `||`,
`CASE`), so both sources give the same bytes from the same data. Dates are read by each database's own
date functions (`Queries.day`), to one rule that both keep:

- a `date`, or ISO text with no offset (`2026-11-27`, `2026-11-27 10:00`), is the day it names;
- a `timestamptz`, or ISO text with an offset (`2026-11-26T20:00:00Z`, `...+05:30`), is an instant,
  shown as the day it was in the report's time zone (`REPORT_TIMEZONE`);
- anything else (empty, `27/11/2026`, a number, a day no calendar has such as `2026-02-30` or year 0)
  is no date, and a completion that is no date is no completion, for the report and the dashboard
  alike. Its cell is empty, and the report's log names the participant (`undated_query`).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)
TABLES = """
CREATE TABLE IF NOT EXISTS courses (
    course_id TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS course_assessments (
    course_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    max_score INTEGER NOT NULL,
    PRIMARY KEY (course_id, content_id)
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    course_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status INTEGER NOT NULL,
    start_date TEXT,
    end_date TEXT,
    created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_created_by ON batches (created_by);
CREATE TABLE IF NOT EXISTS batch_mentors (
    batch_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (batch_id, user_id)
);
CREATE INDEX IF NOT EXISTS batch_mentors_user ON batch_mentors (user_id);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    name TEXT,
    state TEXT,
    district TEXT,
    org_name TEXT,
    school_id TEXT,
    school_name TEXT,
    block_name TEXT,
    cluster_name TEXT,
    user_type TEXT,
    user_sub_type TEXT,
    declared_board TEXT
);
CREATE TABLE IF NOT EXISTS enrolments (
    batch_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    enrolled_date TEXT NOT NULL,
    completed_date TEXT,
    progress INTEGER NOT NULL DEFAULT 0,
    certificate_issued INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, user_id)
);
CREATE TABLE IF NOT EXISTS assessment_scores (
    batch_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    score INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (batch_id, user_id, content_id)
);
"""

HEADER = [
    "Collection Id", "Collection Name", "Batch Id", "Batch Name", "User UUID", "User Name", "State",
    "District", "Org Name", "School Id", "School Name", "Block Name", "Cluster Name", "User Type",
    "User Sub Type", "Declared Board", "Enrolment Date", "Completion Date", "Certificate Status",
    "Progress", "Total Score", "No of attempts",
]  # fmt: skip

TEXT_COLUMNS = [
    "c.course_id", "c.name", "b.batch_id", "b.name", "e.user_id", "u.name", "u.state", "u.district",
    "u.org_name", "u.school_id", "u.school_name", "u.block_name", "u.cluster_name", "u.user_type",
    "u.user_sub_type", "u.declared_board",
]  # fmt: skip

# Spreadsheets run a cell that starts with one of these; a leading quote makes it plain text.
FORMULA_CHARS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_STARTS = "('=', '+', '-', '@', chr(9), chr(13))"
CERTIFICATE = "CASE WHEN e.certificate_issued = 1 THEN 'Issued' ELSE '' END"

# Spells a date column as `dd/MM/yyyy`, or NULL when it holds no date; the zone is the report's, or
# None where only whether there is a date counts.
Day = Callable[[str, ZoneInfo | None], str]


def real_day(text: str) -> str:
    """Whether ISO text (`yyyy-mm-dd...`, already matched) names a day the calendar has: PostgreSQL refuses
    to cast `2026-02-30` or year 0 (failing the whole query), SQLite reads them as they are; both
    databases check them with this same arithmetic first."""
    year, month, of_month = (f"CAST(substr({text}, {at}, {size}) AS INTEGER)" for at, size in ((1, 4), (6, 2), (9, 2)))
    leap = f"({year} % 4 = 0 AND ({year} % 100 <> 0 OR {year} % 400 = 0))"
    february = f"CASE WHEN {leap} THEN 29 ELSE 28 END"
    days = f"CASE WHEN {month} IN (4, 6, 9, 11) THEN 30 WHEN {month} = 2 THEN {february} ELSE 31 END"
    return f"({year} > 0 AND {of_month} <= {days})"


def completed(day: Day) -> str:
    return f"{day('e.completed_date', None)} IS NOT NULL"


def effective_progress(day: Day) -> str:
    """Progress is 100 once completed, else the source's figure held to 0..100. Numbers are cast, so a
    stray text value in a number column (SQLite allows it) cannot reach a cell."""
    return (
        f"CASE WHEN {completed(day)} THEN 100 "
        "WHEN e.progress < 0 THEN 0 WHEN e.progress > 100 THEN 100 ELSE CAST(e.progress AS INTEGER) END"
    )


def formula_safe(text: str) -> str:
    """The formula guard for cells written by Python (the header) rather than by SQL."""
    return "'" + text if text.startswith(FORMULA_CHARS) else text


def guarded(expr: str, char: str = "chr") -> str:
    starts = FORMULA_STARTS.replace("chr(", f"{char}(")
    return f"CASE WHEN substr({expr}, 1, 1) IN {starts} THEN '''' || {expr} ELSE {expr} END"


CHUNK_ROWS = 2000


@contextmanager
def csv_text(out: BinaryIO) -> Iterator[io.TextIOWrapper]:
    """UTF-8 text over a binary file, detached afterwards so the caller's file stays open."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    try:
        yield text
        text.flush()
    finally:
        text.detach()


def csv_writer(text: io.TextIOWrapper | io.StringIO) -> Any:
    """RFC 4180: minimal quoting, CRLF line ends."""
    return csv.writer(text, lineterminator="\r\n")


# Above every user id in binary order: the open upper end of the last part of a batch.
LAST_KEY = "\U0010ffff"


def report_query(assessments: int, dialect: Queries, zone: ZoneInfo) -> str:
    """One row per enrolment of a range of participants, columns in the contract's order, then one score
    per assessment, dates as days in `zone`.

    Parameter 1 is the batch id, the assessment content ids follow, then the range's lower (inclusive)
    and upper (exclusive) user id.
    """
    param, char, collate, day = dialect.param, dialect.char, dialect.collate, dialect.day
    lower, upper = param.format(assessments + 2), param.format(assessments + 3)
    in_range = f"{{0}}.user_id{collate} >= {lower} AND {{0}}.user_id{collate} < {upper}"
    # One grouped pass over the batch's scores, joined once, costs half of per-row subqueries.
    per_assessment = [
        f"max(CASE WHEN s.content_id = {param.format(i + 2)} THEN s.score END) AS a{i}" for i in range(assessments)
    ]
    scores = (
        "\nLEFT JOIN (SELECT s.user_id AS user_id, sum(s.score) AS total, sum(s.attempts) AS attempts"
        + "".join(f", {column}" for column in per_assessment)
        + f" FROM assessment_scores s WHERE s.batch_id = {param.format(1)} AND {in_range.format('s')}"
        " GROUP BY s.user_id) g"
        " ON g.user_id = e.user_id"
    )
    columns = [guarded(c, char) for c in TEXT_COLUMNS] + [
        day("e.enrolled_date", zone),
        day("e.completed_date", zone),
        CERTIFICATE,
        effective_progress(day),
        "CAST(g.total AS INTEGER)",
        "CAST(g.attempts AS INTEGER)",
        *(f"CAST(g.a{i} AS INTEGER)" for i in range(assessments)),
    ]
    return (
        "SELECT " + ",\n  ".join(columns) + "\nFROM enrolments e"
        "\nJOIN batches b ON b.batch_id = e.batch_id"
        "\nJOIN courses c ON c.course_id = b.course_id"
        "\nLEFT JOIN users u ON u.user_id = e.user_id"
        + scores
        + f"\nWHERE e.batch_id = {param.format(1)} AND {in_range.format('e')}"
        f"\nORDER BY e.user_id{collate}"
    )


# The participants with a date that is no date that a report's log names, per part; more are counted.
UNDATED_NAMED = 10


def undated_query(param: str, day: Day, collate: str) -> str:
    """The participants of a range (parameters as the report's: batch, lower, upper user id) whose
    enrolment or completion date is set but is no date, so that the report's log can name them: their
    cell is empty, which the mentor would otherwise take for "not completed"."""
    undated = [f"({column} IS NOT NULL AND CAST({column} AS TEXT) <> '' AND {day(column, None)} IS NULL)"
               for column in ("e.enrolled_date", "e.completed_date")]  # fmt: skip
    return (
        "SELECT e.user_id, CAST(e.enrolled_date AS TEXT), CAST(e.completed_date AS TEXT) FROM enrolments e"
        f" WHERE e.batch_id = {param.format(1)} AND e.user_id{collate} >= {param.format(2)}"
        f" AND e.user_id{collate} < {param.format(3)} AND ({' OR '.join(undated)})"
        f" ORDER BY e.user_id{collate} LIMIT {UNDATED_NAMED + 1}"
    )


def warn_undated(batch_id: str, found: Sequence[Sequence[str | None]]) -> None:
    for user_id, enrolled, completed_on in found[:UNDATED_NAMED]:
        log.warning("batch %s, user %s: a date that is no date (enrolled %r, completed %r) is an empty cell",
                    batch_id, user_id, enrolled, completed_on)  # fmt: skip
    if len(found) > UNDATED_NAMED:
        log.warning("batch %s: more participants than these %d have a date that is no date", batch_id, UNDATED_NAMED)


def part_offsets(total: int, parts: int) -> list[int]:
    """The rows, in report order, at which parts 2..n of a batch of `total` rows begin."""
    return [total * i // parts for i in range(1, parts)]


def part_bound_query(param: str, collate: str = "") -> str:
    """The user id that starts the part beginning at row `param 2` of a batch in report order."""
    return (
        f"SELECT user_id FROM enrolments WHERE batch_id = {param.format(1)} "
        f"ORDER BY user_id{collate} LIMIT 1 OFFSET {param.format(2)}"
    )


def dashboard_query(param: str, day: Day) -> str:
    """The dashboard's figures, by the report's own rules: a participant counts as completed, in
    progress or certified exactly when their row in the file says so."""
    progress = effective_progress(day)
    return (
        "SELECT count(*), "
        f"sum(CASE WHEN {completed(day)} THEN 1 ELSE 0 END), "
        f"sum(CASE WHEN NOT ({completed(day)}) AND ({progress}) > 0 THEN 1 ELSE 0 END), "
        f"avg({progress}), "
        f"sum(CASE WHEN {CERTIFICATE} = 'Issued' THEN 1 ELSE 0 END) "
        f"FROM enrolments e WHERE e.batch_id = {param.format(1)}"
    )


def histogram_query(param: str, day: Day) -> str:
    progress = effective_progress(day)
    bucket = f"CASE WHEN ({progress}) >= 90 THEN 9 ELSE ({progress}) / 10 END"
    return f"SELECT {bucket} AS bucket, count(*) FROM enrolments e WHERE e.batch_id = {param.format(1)} GROUP BY 1"


MENTOR_BATCHES = (
    "SELECT b.batch_id, b.course_id, c.name, b.name, b.status, b.start_date, b.end_date, "
    "(SELECT count(*) FROM enrolments e WHERE e.batch_id = b.batch_id) "
    "FROM batches b JOIN courses c ON c.course_id = b.course_id "
    "WHERE b.created_by = {p1} "
    "OR b.batch_id IN (SELECT m.batch_id FROM batch_mentors m WHERE m.user_id = {p1}) "
    "ORDER BY b.start_date{collate} DESC, b.batch_id{collate}"
)
BATCH = (
    "SELECT b.batch_id, b.course_id, c.name, b.name, b.status, b.start_date, b.end_date, b.created_by "
    "FROM batches b JOIN courses c ON c.course_id = b.course_id WHERE b.batch_id = {p1}"
)
BATCH_MENTORS = "SELECT user_id FROM batch_mentors WHERE batch_id = {p1}"
ASSESSMENTS = "SELECT content_id FROM course_assessments WHERE course_id = {p1} ORDER BY position, content_id{collate}"
PARTICIPANTS = "SELECT count(*) FROM enrolments WHERE batch_id = {p1}"
USER_NAME = "SELECT name FROM users WHERE user_id = {p1}"


class Queries:
    """Every statement of the report source, spelled once for one dialect: `param` is how it writes the
    i-th bind parameter (`?{}` or `${}`), `char` its chr()/char() function, `day` how it reads a date,
    `collate` what makes it compare user ids byte by byte (SQLite does already)."""

    def __init__(self, param: str, char: str, day: Day, collate: str = "") -> None:
        self.param, self.char, self.day, self.collate = param, char, day, collate
        p1 = param.format(1)
        self.batch = BATCH.format(p1=p1)
        self.mentors = BATCH_MENTORS.format(p1=p1)
        self.mentor_batches = MENTOR_BATCHES.format(p1=p1, collate=collate)
        self.assessments = ASSESSMENTS.format(p1=p1, collate=collate)
        self.participants = PARTICIPANTS.format(p1=p1)
        self.user_name = USER_NAME.format(p1=p1)
        self.dashboard = dashboard_query(param, day)
        self.histogram = histogram_query(param, day)
        self.part_bound = part_bound_query(param, collate)
        self.undated = undated_query(param, day, collate)

    def report(self, assessments: int, zone: ZoneInfo) -> str:
        return report_query(assessments, self, zone)
