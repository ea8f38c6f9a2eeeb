"""The report row as SpreadsheetML (an XLSX worksheet's `<row>`), spelled in SQL for both sources.

The database writes each row's markup whole, as it writes the CSV's formatting: per-cell work in SQL
costs it little, where the same work in Python is what makes a million rows slow. Cells carry no
address (`r`): a reader places each one after the last, so an absent value is an empty `<c/>`. Text is
an inline string (no shared-strings table that parts made in parallel would have to agree on), with
`&`, `<` and `>` escaped, only in the few values that hold one (three searches cost less than three
`replace` calls, or a pattern). Characters XML forbids, and cells longer than a spreadsheet holds, are dealt with by
the part writer (`jobs/xlsx.py`), in one pass over a chunk of rows rather than a SQL call per cell.
`NULL || text` is NULL in both databases, so `COALESCE` gives the empty cell without reading a value twice.
"""

from __future__ import annotations

# The style (in the workbook's styles.xml, jobs/xlsx.py) that shows a day number as dd/mm/yyyy.
DATE_STYLE = 1


def text_cell(expr: str, has_markup: str) -> str:
    """`has_markup` is the dialect's test for `&`, `<` or `>` in a value (`{0}` stands for it)."""
    escaped = f"replace(replace(replace({expr}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"
    value = f"CASE WHEN {has_markup.format(expr)} THEN {escaped} ELSE NULLIF({expr}, '') END"
    return f"""COALESCE('<c t="inlineStr"><is><t>' || {value} || '</t></is></c>', '<c/>')"""


def number_cell(expr: str) -> str:
    return f"COALESCE('<c><v>' || {expr} || '</v></c>', '<c/>')"


def date_cell(serial: str) -> str:
    """`serial` is the day as a spreadsheet counts it (days since 30/12/1899), shown by the date style."""
    return f"""COALESCE('<c s="{DATE_STYLE}"><v>' || {serial} || '</v></c>', '<c/>')"""


def row(cells: list[str]) -> str:
    """One `format()` call (SQLite and PostgreSQL both have it) writes the row in one pass, where a chain
    of `||` would copy the growing row once for every cell."""
    return f"format('<row>{'%s' * len(cells)}</row>', {', '.join(cells)})"
