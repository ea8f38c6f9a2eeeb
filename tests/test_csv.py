"""The CSV, cell by cell against the source rows, computed here from the contract's rules in Python."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import datetime

import aiohttp
import pytest

from hub.source.schema import HEADER
from tests.helpers import MENTOR, Call, next_event

BATCH = "batch-0001"
RISKY = {
    "formula-eq": ('=HYPERLINK("http://x","click")', "@SUM(A1)"),
    "formula-plus": ("+91 98450 00000", "-2+3"),
    "formula-tab": ("\tTab Name", "\rCarriage"),
    "devanagari": ("सुनीता शर्मा", 'राजकीय विद्यालय, "लखनऊ"'),
}


def guard(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def ddmmyyyy(value: str | None) -> str:
    return datetime.strptime(value, "%Y-%m-%d").strftime("%d/%m/%Y") if value else ""


def expected_rows(db: str, batch_id: str) -> tuple[list[str], list[list[str]]]:
    with sqlite3.connect(db) as conn:
        course_id, course_name, batch_name = conn.execute(
            "SELECT c.course_id, c.name, b.name FROM batches b JOIN courses c USING (course_id) WHERE batch_id = ?",
            (batch_id,),
        ).fetchone()
        assessments = [
            a
            for (a,) in conn.execute(
                "SELECT content_id FROM course_assessments WHERE course_id = ? ORDER BY position", (course_id,)
            )
        ]
        scores: dict[tuple[str, str], tuple[int, int]] = {
            (u, c): (s, a)
            for u, c, s, a in conn.execute(
                "SELECT user_id, content_id, score, attempts FROM assessment_scores WHERE batch_id = ?", (batch_id,)
            )
        }
        rows = []
        for enrolment in conn.execute(
            "SELECT e.user_id, e.enrolled_date, e.completed_date, e.progress, e.certificate_issued, u.name, u.state, "
            "u.district, u.org_name, u.school_id, u.school_name, u.block_name, u.cluster_name, u.user_type, "
            "u.user_sub_type, u.declared_board FROM enrolments e JOIN users u USING (user_id) WHERE e.batch_id = ?",
            (batch_id,),
        ):
            user_id, enrolled, completed, progress, certificate, *profile = enrolment
            mine = [scores[(user_id, a)] for a in assessments if (user_id, a) in scores]
            rows.append(
                [guard(v) for v in (course_id, course_name, batch_id, batch_name, user_id, *profile)]
                + [
                    ddmmyyyy(enrolled),
                    ddmmyyyy(completed),
                    "Issued" if certificate else "",
                    str(100 if completed else max(0, min(100, progress))),
                    str(sum(s for s, _ in mine)) if mine else "",
                    str(sum(a for _, a in mine)) if mine else "",
                ]
                + [str(scores[(user_id, a)][0]) if (user_id, a) in scores else "" for a in assessments]
            )
    header = [*HEADER, *(f"{a} - Score" for a in assessments)]
    return header, sorted(rows, key=lambda row: row[4])


@pytest.fixture
def risky_participants(settings, batch) -> None:
    """Participants whose names and schools a spreadsheet would run, and names in Devanagari."""
    with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
        for user_id, (name, school) in RISKY.items():
            conn.execute(
                "INSERT INTO users (user_id, name, state, district, school_name) VALUES (?, ?, ?, ?, ?)",
                (user_id, name, "Uttar Pradesh", "Lucknow", school),
            )
            conn.execute("INSERT INTO enrolments VALUES (?, ?, '2026-01-05', NULL, 150, 0)", (BATCH, user_id))


async def report(call: Call, http, socket_url) -> tuple[dict, bytes]:
    async with http.ws_connect(await socket_url()) as ws:
        await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        ready = await next_event(ws, "report.completed")
    async with aiohttp.ClientSession() as anonymous, anonymous.get(ready["downloadUrl"]) as response:
        return ready, await response.read()


async def test_every_cell_matches_the_source_rows(
    call: Call, http, socket_url, settings, risky_participants, worker
) -> None:
    _, content = await report(call, http, socket_url)
    header, rows = expected_rows(settings.source_url.removeprefix("sqlite:///"), BATCH)
    parsed = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert parsed[0] == header
    assert parsed[1:] == rows
    assert len(rows) == 120 + len(RISKY)


async def test_cells_a_spreadsheet_would_run_are_quoted_as_text(
    call: Call, http, socket_url, risky_participants, worker
) -> None:
    _, content = await report(call, http, socket_url)
    by_user = {row[4]: row for row in csv.reader(io.StringIO(content.decode("utf-8-sig"), newline=""))}
    assert by_user["formula-eq"][5] == '\'=HYPERLINK("http://x","click")'
    assert by_user["formula-eq"][10] == "'@SUM(A1)"
    assert by_user["formula-plus"][5] == "'+91 98450 00000"
    assert by_user["formula-plus"][10] == "'-2+3"
    assert by_user["formula-tab"][5] == "'\tTab Name"
    assert by_user["devanagari"][5] == "सुनीता शर्मा"
    assert by_user["devanagari"][10] == 'राजकीय विद्यालय, "लखनऊ"'
    assert by_user["devanagari"][19] == "100"  # progress is capped at 100


async def test_the_file_is_utf8_with_a_byte_order_mark_crlf_and_the_contract_name(
    call: Call, http, socket_url, settings, worker
) -> None:
    ready, content = await report(call, http, socket_url)
    assert content.startswith(b"\xef\xbb\xbf")
    assert content.count(b"\r\n") == 121
    assert ready["fileName"] == f"{BATCH}_progress_{datetime.now(settings.report_zone):%Y%m%d}.csv"
    assert ready["bytes"] == len(content)


async def test_completed_participants_show_progress_100_and_a_completion_date(
    call: Call, http, socket_url, worker
) -> None:
    _, content = await report(call, http, socket_url)
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    completed = [row for row in rows if row["Completion Date"]]
    assert completed, "the seed completes about a third of the batch"
    assert {row["Progress"] for row in completed} == {"100"}
    assert all(row["Certificate Status"] in ("Issued", "") for row in rows)
    assert all(datetime.strptime(row["Enrolment Date"], "%d/%m/%Y") for row in rows)
    assert MENTOR not in {row["User UUID"] for row in rows}


async def test_odd_values_in_the_source_cannot_become_formulas_or_false_completions(
    call: Call, http, socket_url, settings, worker
) -> None:
    """SQLite lets a text value sit in a number column and an empty string in a date column."""
    with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
        conn.execute("INSERT INTO course_assessments VALUES ('do_course_0001', '=cmd', 'x', 9, 10)")
        conn.execute("INSERT INTO users (user_id, name) VALUES ('odd-1', 'Odd One')")
        conn.execute("INSERT INTO enrolments VALUES (?, 'odd-1', '2026-01-05', '', 40, 0)", (BATCH,))
        conn.execute("INSERT INTO assessment_scores VALUES (?, 'odd-1', '=cmd', '=1+1', 1)", (BATCH,))
    _, content = await report(call, http, socket_url)
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert rows[0][-1] == "'=cmd - Score"
    odd = next(row for row in rows if row[4] == "odd-1")
    assert odd[17] == ""  # Completion Date
    assert odd[19] == "40"  # Progress: not forced to 100 by an empty date
    assert not any(cell.startswith(("=", "+", "@")) for cell in odd)


# (user, completion date as the source holds it, progress, certificate): every edge of the rules.
EDGES = [
    ("edge-done-at-40", "2026-02-01", 40, 1),  # completed, progress not yet 100 in the source
    ("edge-done-instant", "2026-02-01T20:00:00Z", 70, 0),
    ("edge-over", None, 150, 0),  # progress out of range, no completion
    ("edge-under", None, -5, 1),  # a certificate without a completion date
    ("edge-empty-date", "", 40, 0),
    ("edge-not-a-date", "done", 90, 0),
    ("edge-zero", None, 0, 0),
]


def figures_of(rows: list[dict[str, str]]) -> dict:
    """The dashboard's figures, counted from the file a mentor downloads."""
    progress = [int(row["Progress"]) for row in rows]
    completed = sum(1 for row in rows if row["Completion Date"])
    in_progress = sum(1 for row, p in zip(rows, progress, strict=True) if not row["Completion Date"] and p > 0)
    histogram = [0] * 10
    for p in progress:
        histogram[min(p // 10, 9)] += 1
    return {
        "enrolled": len(rows),
        "completed": completed,
        "inProgress": in_progress,
        "notStarted": len(rows) - completed - in_progress,
        "averageProgress": round(sum(progress) / len(rows), 1),
        "certificatesIssued": sum(1 for row in rows if row["Certificate Status"] == "Issued"),
        "histogram": histogram,
    }


async def test_the_dashboard_shows_what_the_report_holds_for_every_edge(
    call: Call, http, socket_url, source, worker
) -> None:
    columns = ("batch_id", "user_id", "enrolled_date", "completed_date", "progress", "certificate_issued")
    await source.insert("enrolments", columns, [(BATCH, user, "2026-01-05", *edge) for user, *edge in EDGES])
    _, content = await report(call, http, socket_url)
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    status, body = await call("GET", f"/v1/batches/{BATCH}/dashboard")
    assert status == 200
    shown = {name: body["result"][name] for name in figures_of(rows)}
    assert shown == figures_of(rows)
    by_user = {row["User UUID"]: row for row in rows}
    assert [by_user[user]["Progress"] for user, *_ in EDGES] == ["100", "100", "100", "0", "40", "90", "0"]
