"""The report as an XLSX workbook, made in the same parallel parts as the CSV.

A workbook cannot be cut and joined like CSV text, but its biggest piece can: a worksheet's rows. Each
part writer deflates its rows (SpreadsheetML that the database wrote, `hub/source/sheet.py`) as a raw
deflate stream ended by a sync flush, which leaves it on a byte boundary with no final block, and
notes its CRC-32 and length. The worker streams the ZIP: the small package files, then each worksheet
as one entry made of its head, the parts' deflate streams one after the other and a finishing tail,
with the CRCs joined (`zipstream.crc32_combine`). Nothing is inflated again or held whole, so the
parts keep their speed and the worker its memory.

Rows are XML with inline strings and no cell addresses; the sheet declares no `<dimension>` (the count
is only known at the end, and readers that trust a wrong one drop rows). Past `SHEET_ROWS` rows the
report goes on in another sheet, each with the header: a part never spans two sheets.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, BinaryIO, Protocol
from xml.sax.saxutils import escape

from isal import isal_zlib

from jobs.spool import Tally, Written
from jobs.zipstream import ZipStream, crc32_combine

# Excel holds 1,048,576 rows a sheet; a round million leaves room for a batch that grew while it was read.
SHEET_ROWS = 1_000_000
MAX_CELL_CHARS = 32_767
# Deflate by Intel's ISA-L at its level 1: six times as fast as zlib's fastest level on these rows, and
# smaller; its streams are plain raw deflate, so the parts and the pieces around them join as zlib's do.
LEVEL = 1
FRAME = struct.Struct("<II")  # a spooled piece of deflate stream: the rows it holds, its length
HEADER_STYLE = 2
# Characters XML 1.0 forbids: C0 controls other than tab, line feed, carriage return (as UTF-8 bytes,
# which never occur inside another character's encoding), and the non-characters U+FFFE and U+FFFF.
FORBIDDEN = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
NONCHARACTERS = re.compile(b"\xef\xbf[\xbe\xbf]")
LONG_TEXT = re.compile(rb"<t>([^<]{%d,})</t>" % (MAX_CELL_CHARS + 1))
# Typical widths (characters) of the contract's columns; an assessment column fits its header.
WIDTHS = {
    "Collection Id": 24, "Collection Name": 36, "Batch Id": 24, "Batch Name": 24, "User UUID": 38,
    "User Name": 24, "State": 16, "District": 16, "Org Name": 28, "School Id": 14, "School Name": 30,
    "Block Name": 18, "Cluster Name": 16, "User Type": 14, "User Sub Type": 16, "Declared Board": 16,
    "Enrolment Date": 15, "Completion Date": 16, "Certificate Status": 18, "Progress": 10,
    "Total Score": 12, "No of attempts": 15,
}  # fmt: skip
MAX_WIDTH = 60

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
# 0: plain; 1: a day number shown dd/mm/yyyy whatever the reader's locale (the slashes escaped, or Excel
# puts the locale's date separator in their place); 2: the bold header.
STYLES = (
    f'<styleSheet xmlns="{MAIN}"><numFmts count="1"><numFmt numFmtId="164" formatCode="dd\\/mm\\/yyyy"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    "<borders count=\"1\"><border><left/><right/><top/><bottom/><diagonal/></border></borders>"
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
)  # fmt: skip
SHEET_TAIL = b"</sheetData></worksheet>"


class PartOutput(Protocol):
    """A part as the worker sees it (`jobs.parts`): its first row in the batch, its spooled bytes as they
    come, and what its writer reports when done."""

    first_row: int
    written: asyncio.Future[Written]

    def chunks(self) -> AsyncIterator[bytes]: ...


def _cut(match: re.Match[bytes]) -> bytes:
    text = html.unescape(match.group(1).decode())
    return b"<t>" + escape(text[:MAX_CELL_CHARS]).encode() + b"</t>"


def clean(rows: list[bytes]) -> bytes:
    """The rows as one piece of valid XML: forbidden characters removed, carriage returns kept as
    references (a parser turns a bare one into a line feed), a cell past the limit cut. A pass over the
    chunk in C for each, instead of work per cell."""
    if max(map(len, rows), default=0) > MAX_CELL_CHARS:
        rows = [LONG_TEXT.sub(_cut, row) for row in rows]
    data = b"".join(rows).translate(None, FORBIDDEN)
    if b"\r" in data:
        data = data.replace(b"\r", b"&#13;")
    if b"\xef\xbf" in data:
        data = NONCHARACTERS.sub(b"", data)
    return data


async def deflate_rows(chunks: AsyncIterator[Sequence[Any]], out: BinaryIO) -> Written:
    """Runs in a part writer: the source's SpreadsheetML rows, deflated into framed pieces in `out` (the
    rows each holds let the worker show progress), ended by a sync flush."""
    deflate = isal_zlib.compressobj(LEVEL, isal_zlib.DEFLATED, -15)
    crc = size = rows = 0
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            data = clean([row[0] for row in chunk])
            crc = zlib.crc32(data, crc)
            size += len(data)
            rows += len(chunk)
            _frame(out, len(chunk), deflate.compress(data))
    _frame(out, 0, deflate.flush(isal_zlib.Z_SYNC_FLUSH))
    return Written(rows, crc, size)


def _frame(out: BinaryIO, rows: int, data: bytes) -> None:
    out.write(FRAME.pack(rows, len(data)) + data)
    out.flush()


async def _unframed(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        start = 0
        while len(buffer) - start >= FRAME.size:
            rows, length = FRAME.unpack_from(buffer, start)
            end = start + FRAME.size + length
            if end > len(buffer):
                break
            yield rows, bytes(buffer[start + FRAME.size : end])
            start = end
        del buffer[:start]


def _text_cell(value: str, style: str = "") -> str:
    return f'<c t="inlineStr"{style}><is><t>{escape(value[:MAX_CELL_CHARS])}</t></is></c>'


def sheet_head(header: Sequence[str]) -> bytes:
    """The worksheet up to its first data row: the header frozen above the rows, the columns sized."""
    cols = "".join(
        f'<col min="{i}" max="{i}" width="{min(MAX_WIDTH, max(len(name) + 2, WIDTHS.get(name, 0)))}" customWidth="1"/>'
        for i, name in enumerate(header, 1)
    )
    cells = "".join(_text_cell(name, f' s="{HEADER_STYLE}"') for name in header)
    return clean([
        f'{XML_HEAD}<worksheet xmlns="{MAIN}"><sheetViews><sheetView workbookViewId="0">'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft"/></sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/>'
        f"<cols>{cols}</cols><sheetData><row>{cells}</row>".encode()
    ])  # fmt: skip


def package(sheets: int) -> dict[str, str]:
    """Every file of the workbook but its worksheets."""
    names = ["Progress", *(f"Progress {n}" for n in range(2, sheets + 1))]
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{SHEET_TYPE}"/>' for n in range(1, sheets + 1)
    )
    office = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    return {
        "[Content_Types].xml": (
            f'{XML_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{office}.sheet.main+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{office}.styles+xml"/>{overrides}</Types>'
        ),
        "_rels/.rels": (
            f'{XML_HEAD}<Relationships xmlns="{PACKAGE_RELATIONSHIPS}"><Relationship Id="rId1" '
            f'Type="{RELATIONSHIPS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'{XML_HEAD}<workbook xmlns="{MAIN}" xmlns:r="{RELATIONSHIPS}"><sheets>'
            + "".join(f'<sheet name="{name}" sheetId="{n}" r:id="rId{n}"/>' for n, name in enumerate(names, 1))
            + "</sheets></workbook>"
        ),
        "xl/_rels/workbook.xml.rels": (
            f'{XML_HEAD}<Relationships xmlns="{PACKAGE_RELATIONSHIPS}">'
            + "".join(
                f'<Relationship Id="rId{n}" Type="{RELATIONSHIPS}/worksheet" Target="worksheets/sheet{n}.xml"/>'
                for n in range(1, sheets + 1)
            )
            + f'<Relationship Id="rId{sheets + 1}" Type="{RELATIONSHIPS}/styles" Target="styles.xml"/></Relationships>'
        ),
        "xl/styles.xml": XML_HEAD + STYLES,
    }


def sheets_of(parts: Sequence[PartOutput], sheet_rows: int) -> list[list[PartOutput]]:
    """The parts grouped by the sheet their first row falls in (`PartWriters.parts` begins a part at
    each sheet's first row)."""
    sheets: list[list[PartOutput]] = [[] for _ in range(parts[-1].first_row // sheet_rows + 1)]
    for part in parts:
        sheets[part.first_row // sheet_rows].append(part)
    return sheets


class _Deflated:
    """One worksheet entry's uncompressed length and CRC-32, across the pieces it is made of."""

    def __init__(self) -> None:
        self.crc = 0
        self.size = 0

    def own(self, data: bytes, finish: bool) -> bytes:
        """Deflates a piece made here (the head, the tail) as a stream of its own."""
        deflate = isal_zlib.compressobj(LEVEL, isal_zlib.DEFLATED, -15)
        self.add(Written(0, zlib.crc32(data), len(data)))
        return deflate.compress(data) + deflate.flush(isal_zlib.Z_FINISH if finish else isal_zlib.Z_SYNC_FLUSH)

    def add(self, written: Written) -> None:
        self.crc = crc32_combine(self.crc, written.crc, written.size) if self.size else written.crc
        self.size += written.size


async def workbook(
    header: Sequence[str], parts: Sequence[PartOutput], advance: Callable[[int], Awaitable[None]], tally: Tally,
    sheet_rows: int = SHEET_ROWS,
) -> AsyncIterator[bytes]:  # fmt: skip
    """The XLSX file's bytes, as the parts are written; `advance` hears of rows as they go by, `tally`
    counts them; a sheet begins every `sheet_rows` rows of the batch."""
    sheets = sheets_of(parts, sheet_rows)
    archive = ZipStream()
    for name, content in package(len(sheets)).items():
        yield archive.whole(name, content.encode())
    head = sheet_head(header)
    for number, members in enumerate(sheets, 1):
        yield archive.begin(f"xl/worksheets/sheet{number}.xml")
        entry = _Deflated()
        yield archive.data(entry.own(head, finish=False))
        for part in members:
            async for rows, data in _unframed(part.chunks()):
                yield archive.data(data)
                await advance(rows)
            written = await part.written
            entry.add(written)
            tally.rows += written.rows
        yield archive.data(entry.own(SHEET_TAIL, finish=True))
        yield archive.end(entry.crc, entry.size)
    yield archive.directory()
