"""The report as a spreadsheet (`format: xlsx`): opened as mentors open it, every cell is the source's
value with its type. Ids keep every digit and leading zero (text cells), dates are dates shown
dd/mm/yyyy in any locale, figures are numbers, and nothing needs a formula guard; what XML cannot hold is
removed and what a cell cannot hold is cut. The CSV of the same batch is the reference."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import openpyxl
import pytest

from hub.source import Source
from hub.source.schema import FORMULA_CHARS, HEADER
from hub.source.seed import seed
from jobs.parts import PartWriters
from jobs.report import header
from jobs.spool import Tally
from jobs.xlsx import MAX_CELL_CHARS, workbook
from tests.calc import CSV_EXPORT, convert
from tests.helpers import MENTOR, Call, next_event

# Sunbird's batch ids: 18-21 digits, starting with 0; a spreadsheet that takes one for a number keeps 15.
BATCH = "013307481768378368112"
PARTICIPANTS = 40
DATE_COLUMNS = ("Enrolment Date", "Completion Date")
NUMBER_COLUMNS = ("Progress", "Total Score", "No of attempts")
# (user id, name, school id, school name): what the file must carry as it is, or as XML allows.
AWKWARD = [
    ("x-formula", "=SUM(A1:A9)", "0712345678", "A & B <Vidyalaya>"),
    ("x-plus", "+91 98450 00000", "01", '"Adarsh" Vidyalaya'),
    ("x-control", "Ravi\x01 Kumar\x0b", "02", "Line one\r\nline two"),
    ("x-long", "L" * (MAX_CELL_CHARS + 5000), "03", "GHS Madurai"),
    ("x-tamil", "கயல்விழி சுப்பிரமணியம்", "04", "அரசு மேல்நிலைப் பள்ளி, மதுரை"),
]
PASSWORD = "Mentor2026pass"


@pytest.fixture
async def sunbird_batch(source: Source) -> None:
    await seed(source, PARTICIPANTS, batch_id=BATCH, course_id="do_course_0002", mentor_id=MENTOR, rng_seed=3,
               progress=None)  # fmt: skip
    await source.insert("users", ("user_id", "name", "school_id", "school_name"), AWKWARD)
    columns = ("batch_id", "user_id", "enrolled_date", "completed_date", "progress", "certificate_issued")
    rows = [(BATCH, user, "2026-01-05", "2026-11-26T20:00:00Z" if i % 2 else None, 40, i % 2)
            for i, (user, *_) in enumerate(AWKWARD)]  # fmt: skip
    await source.insert("enrolments", columns, rows)


async def report(call: Call, http: aiohttp.ClientSession, socket_url: Any, fmt: str, **asked: str) -> bytes:
    async with http.ws_connect(await socket_url()) as ws:
        status, answer = await call(
            "POST", "/v1/reports/course-progress", json={"batchId": BATCH, "format": fmt, **asked}
        )
        assert status == 202, answer
        ready = await next_event(ws, "report.completed")
    assert ready["fileName"].endswith(".zip" if asked else f".{fmt}")
    async with aiohttp.ClientSession() as anonymous, anonymous.get(ready["downloadUrl"]) as response:
        assert response.status == 200
        return await response.read()


def unguarded(cell: str) -> str:
    """The CSV cell without its formula guard: a spreadsheet's text cell never runs."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_CHARS) else cell


def as_text(cell: str) -> str:
    """A text cell as XML can carry it: no control characters but tab and line breaks, cut to a cell's size."""
    kept = "".join(c for c in unguarded(cell) if c >= " " or c in "\t\n\r")
    return kept[:MAX_CELL_CHARS]


def typed(column: str, cell: str) -> Any:
    """What a CSV cell must be in the workbook, with its type."""
    if not cell:
        return None
    if column in DATE_COLUMNS:
        return datetime.strptime(cell, "%d/%m/%Y")
    if column in NUMBER_COLUMNS or column.endswith(" - Score"):
        return int(cell)
    return as_text(cell)


def in_calc(value: Any) -> Any:
    """Calc keeps a line break in a cell as a line feed alone, as it does when it opens the CSV itself."""
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


def csv_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))


def values(path: Path | io.BytesIO, read_only: bool = False) -> list[list[Any]]:
    sheet = openpyxl.load_workbook(path, read_only=read_only).worksheets[0]
    return [list(row) for row in sheet.iter_rows(values_only=True)]


@pytest.fixture
async def both(call: Call, http: aiohttp.ClientSession, socket_url: Any, sunbird_batch: None, worker: Any) -> tuple:
    """The CSV and the XLSX of the batch, one after the other (one job per batch at a time)."""
    return await report(call, http, socket_url, "csv"), await report(call, http, socket_url, "xlsx")


async def test_every_cell_is_the_sources_value_with_its_type(both: tuple[bytes, bytes]) -> None:
    reference, xlsx = both
    head, *rows = csv_rows(reference)
    cells = values(io.BytesIO(xlsx))
    assert cells[0] == head
    assert cells[1:] == [[typed(column, cell) for column, cell in zip(head, row, strict=True)] for row in rows]
    by_user = {row[4]: row for row in cells[1:]}
    assert by_user["x-formula"][2] == BATCH  # every digit, the leading zero too
    assert [by_user[user][9] for user, *_ in AWKWARD] == [school_id for _, _, school_id, _ in AWKWARD]
    assert by_user["x-formula"][5] == "=SUM(A1:A9)"  # no guard apostrophe: a text cell never runs
    assert by_user["x-control"][5] == "Ravi Kumar"
    assert by_user["x-control"][10] == "Line one\r\nline two"
    assert by_user["x-long"][5] == "L" * MAX_CELL_CHARS
    assert by_user["x-plus"][head.index("Completion Date")] == datetime(2026, 11, 27)  # the day in India


async def test_the_header_is_bold_and_frozen_and_the_columns_sized(both: tuple[bytes, bytes]) -> None:
    sheet = openpyxl.load_workbook(io.BytesIO(both[1])).worksheets[0]
    assert sheet.freeze_panes == "A2"
    assert all(cell.font.b for cell in sheet[1])
    assert all(not cell.font.b for cell in sheet[2])
    assert sheet.column_dimensions["E"].width >= len("000016b1-bb2a-455f-97b9-380e1a8eedc1")
    assert sheet.cell(2, HEADER.index("Enrolment Date") + 1).number_format == "dd\\/mm\\/yyyy"


async def test_a_reader_in_read_only_mode_gets_every_row(both: tuple[bytes, bytes]) -> None:
    """openpyxl's read-only mode believes a sheet's <dimension>: the file states none rather than a wrong one."""
    assert len(values(io.BytesIO(both[1]), read_only=True)) == 1 + PARTICIPANTS + len(AWKWARD)


async def test_calc_shows_the_same_cells_in_the_en_us_and_en_in_locales(
    both: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """Calc opens the file as a person would, in two locales that read dates differently, and exports what
    it shows: the dates dd/mm/yyyy in both, the ids with every digit, the rest as the CSV has it. Saved
    again as XLSX, its cells keep their types."""
    reference, xlsx = both
    report_file = tmp_path / "report.xlsx"
    report_file.write_bytes(xlsx)
    us, india, saved = await asyncio.gather(
        convert(report_file, CSV_EXPORT, "en-US", tmp_path / "us"),
        convert(report_file, CSV_EXPORT, "en-IN", tmp_path / "in"),
        convert(report_file, "xlsx", "en-US", tmp_path / "saved"),
    )
    shown = [[in_calc(as_text(cell)) for cell in row] for row in csv_rows(reference)]
    assert csv_rows(us.read_bytes()) == shown
    assert csv_rows(india.read_bytes()) == shown
    head, *rows = csv_rows(reference)
    expected = [[in_calc(typed(column, cell)) for column, cell in zip(head, row, strict=True)] for row in rows]
    assert values(saved)[1:] == expected


async def test_text_that_is_not_utf8_fails_the_report_as_it_fails_the_csv(
    call: Call, http: aiohttp.ClientSession, socket_url: Any, sunbird_batch: None, worker: Any, settings: Any
) -> None:
    """SQLite keeps any bytes: a name that is not UTF-8 would make a workbook no spreadsheet opens."""
    with sqlite3.connect(settings.source_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE users SET name = CAST(x'ff' AS TEXT) WHERE user_id = 'x-tamil'")
    async with http.ws_connect(await socket_url()) as ws:
        status, _ = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH, "format": "xlsx"})
        assert status == 202
        failed = await next_event(ws, "report.failed")
    assert failed["reason"] == "SOURCE_ERROR"


async def test_a_click_for_either_format_while_a_report_of_the_batch_runs_is_a_duplicate(
    call: Call, sunbird_batch: None
) -> None:
    status, first = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH, "format": "csv"})
    assert status == 202
    status, second = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH, "format": "xlsx"})
    assert (status, second["params"]["err"]) == (409, "DOWNLOAD_IN_PROGRESS")
    assert second["result"]["jobId"] == first["result"]["jobId"]


@pytest.mark.parametrize("fmt", ["pdf", "XLSX", 1, None])
async def test_a_format_the_hub_does_not_make_is_refused(call: Call, sunbird_batch: None, fmt: Any) -> None:
    status, answer = await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH, "format": fmt})
    assert (status, answer["params"]["err"]) == (400, "INVALID_FORMAT")
    assert "csv, xlsx" in answer["params"]["errmsg"]


async def test_a_protected_xlsx_is_a_zip_holding_the_workbook(
    call: Call, http: aiohttp.ClientSession, socket_url: Any, sunbird_batch: None, worker: Any
) -> None:
    raw = await report(call, http, socket_url, "xlsx", encryptionKey=PASSWORD)
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        [info] = archive.infolist()
        assert info.filename.endswith(".xlsx")
        workbook_bytes = archive.read(info, pwd=PASSWORD.encode())
    assert len(values(io.BytesIO(workbook_bytes))) == 1 + PARTICIPANTS + len(AWKWARD)


async def test_a_data_exhaust_request_asks_for_xlsx_with_output_format(
    http: aiohttp.ClientSession, token: Any, socket_url: Any, sunbird_batch: None, worker: Any
) -> None:
    body = {"request": {"tag": f"do_course_0002_{BATCH}", "dataset": "progress-exhaust",
                        "datasetConfig": {"batchId": BATCH}, "output_format": "xlsx"}}  # fmt: skip
    headers = {"x-authenticated-user-token": token(MENTOR), "X-Channel-Id": "channel-1"}
    async with http.ws_connect(await socket_url()) as ws:
        async with http.post("/dataset/v1/request/submit", json=body, headers=headers) as response:
            assert response.status == 200, await response.text()
        ready = await next_event(ws, "report.completed")
    assert ready["fileName"].endswith(".xlsx")
    body["request"]["output_format"] = "json"
    async with http.post("/dataset/v1/request/submit", json=body, headers=headers) as response:
        answer = await response.json()
    assert response.status == 400
    assert answer["params"]["errmsg"] == "output_format 'json' is not supported; supported: csv, xlsx"


async def test_past_a_sheets_rows_the_report_goes_on_in_another_sheet_with_the_header(
    settings: Any, source: Source, batch: dict[str, Any]
) -> None:
    """Through the worker's own part writers, with sheets of 50 rows for the batch of 120 (a million a
    sheet in reports: bench/report.py makes one past it)."""
    assessments = await source.assessments(batch["courseId"])
    writers = PartWriters(settings)
    await writers.start()
    tally = Tally(total=120)

    async def advance(rows: int) -> None:
        pass

    try:
        async with writers.parts(
            source, settings.source_url, settings.report_zone, batch["batchId"], assessments, tally.total, 50
        ) as parts:
            content = b"".join([chunk async for chunk in workbook(header(assessments), parts, advance, tally, 50)])
    finally:
        writers.close()
    book = openpyxl.load_workbook(io.BytesIO(content))
    sheets = [[list(row) for row in sheet.iter_rows(values_only=True)] for sheet in book.worksheets]
    assert [sheet.title for sheet in book.worksheets] == ["Progress", "Progress 2", "Progress 3"]
    assert [len(rows) for rows in sheets] == [51, 51, 21]
    assert all(rows[0] == header(assessments) for rows in sheets)
    users = [row[4] for rows in sheets for row in rows[1:]]
    assert users == sorted(users) and len(set(users)) == 120
    assert tally.rows == 120
