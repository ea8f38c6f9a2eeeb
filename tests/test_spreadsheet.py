"""The report opened where mentors open it: LibreOffice Calc reads the CSV (as a double click would, in
the en-IN locale) and saves it as .xlsx, which is read back cell by cell. Names in Indian scripts stay
intact, dates are dates, numbers are numbers, and nothing in a name or a school becomes a formula."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import openpyxl
import pytest

from hub.source import Source
from tests.calc import convert

BATCH = "batch-0001"
# LibreOffice's CSV import options: comma, double quote, UTF-8, from line 1, default column types,
# the en-IN locale (16393): the way India's spreadsheets read dd/MM/yyyy.
CSV_FILTER = "CSV:44,34,76,1,,16393"
DATE_COLUMNS = ("Enrolment Date", "Completion Date")
NUMBER_COLUMNS = ("Progress", "Total Score", "No of attempts")
# (user id, name, school name): what a spreadsheet must keep as the plain text it is.
AWKWARD = [
    ("sheet-eq", '=HYPERLINK("http://x.example","click")', "School, Ward 4"),
    ("sheet-plus", "+91 98450 00000", '"Adarsh" Vidyalaya'),
    ("sheet-minus", "-1", "Line one\nline two"),
    ("sheet-at", "@SUM(A1:A9)", "GHS Madurai"),
    ("sheet-tamil", "கயல்விழி சுப்பிரமணியம்", "அரசு மேல்நிலைப் பள்ளி, மதுரை"),
    ("sheet-hindi", "सुनीता शर्मा", 'राजकीय विद्यालय, "लखनऊ"'),
]


@pytest.fixture
async def awkward_participants(source: Source, batch: dict[str, Any]) -> None:
    await source.insert("users", ("user_id", "name", "school_name"), [(u, n, s) for u, n, s in AWKWARD])
    columns = ("batch_id", "user_id", "enrolled_date", "completed_date", "progress", "certificate_issued")
    rows = [(BATCH, user, "2026-01-05", "2026-11-26T20:00:00Z" if i % 2 else None, 40, i % 2)
            for i, (user, _, _) in enumerate(AWKWARD)]  # fmt: skip
    await source.insert("enrolments", columns, rows)


async def downloaded_report(http: aiohttp.ClientSession, socket_url: Any, token: Any) -> bytes:
    async with http.ws_connect(await socket_url()) as ws:
        headers = {"Authorization": f"Bearer {token()}"}
        async with http.post("/v1/reports/course-progress", json={"batchId": BATCH}, headers=headers) as response:
            assert response.status == 202
        async with asyncio.timeout(15):
            while (ready := await ws.receive_json())["type"] != "report.completed":
                pass
    async with aiohttp.ClientSession() as anonymous, anonymous.get(ready["downloadUrl"]) as response:
        return await response.read()


async def opened_in_calc(csv_file: Path) -> list[list[Any]]:
    """The cells of the first sheet after LibreOffice Calc has opened the CSV and saved it as .xlsx."""
    converted = await convert(csv_file, "xlsx", "en-IN", csv_file.parent, f"--infilter={CSV_FILTER}")
    sheet = openpyxl.load_workbook(converted).active
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def as_calc_reads_it(header: list[str], row: list[str]) -> list[Any]:
    """What each CSV cell must be in the spreadsheet: a day, a whole number, or the text itself. A
    text cell of digits alone (the seed's school ids) is a number there too."""
    expected: list[Any] = []
    for column, cell in zip(header, row, strict=True):
        if not cell:
            expected.append(None)
        elif column in DATE_COLUMNS:
            expected.append(datetime.strptime(cell, "%d/%m/%Y"))
        elif column in NUMBER_COLUMNS or column.endswith(" - Score") or cell.isdigit():
            expected.append(int(cell))
        else:
            expected.append(cell)
    return expected


async def test_calc_reads_names_dates_and_numbers_as_they_are_and_runs_nothing(
    http: aiohttp.ClientSession, socket_url: Any, token: Any, awkward_participants: None, worker: Any, tmp_path: Path
) -> None:
    content = await downloaded_report(http, socket_url, token)
    csv_file = tmp_path / "report.csv"
    csv_file.write_bytes(content)
    header, *rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    sheet = await opened_in_calc(csv_file)
    assert sheet[0] == header  # the byte-order mark is not part of the first cell
    assert sheet[1:] == [as_calc_reads_it(header, row) for row in rows]
    by_user = {row[4]: row for row in sheet[1:]}
    name, school = header.index("User Name"), header.index("School Name")
    assert [by_user[user][name] for user, *_ in AWKWARD] == [
        '\'=HYPERLINK("http://x.example","click")', "'+91 98450 00000", "'-1", "'@SUM(A1:A9)",
        "கயல்விழி சுப்பிரமணியம்", "सुनीता शर्मा",
    ]  # fmt: skip
    assert [by_user[user][school] for user, *_ in AWKWARD] == [school for *_, school in AWKWARD]
    assert by_user["sheet-plus"][header.index("Completion Date")] == datetime(2026, 11, 27)
    seeded = [row[name] for row in sheet[1:] if not row[4].startswith("sheet-")]
    assert any(re.search("[\u0b80-\u0bff]", text) for text in seeded)  # the seed has Tamil names too
