"""A small one-sheet XLSX workbook (the confirmed prizes): texts written as strings, never
as formulas (a name typed "=1+1" stays text), numbers as numbers."""

from __future__ import annotations

import io
from collections.abc import Sequence

from xlsxwriter import Workbook


def sheet_xlsx(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    buffer = io.BytesIO()
    book = Workbook(buffer, {"in_memory": True, "strings_to_formulas": False})
    bold = book.add_format({"bold": True})
    sheet = book.add_worksheet(title[:31])
    for col, name in enumerate(header):
        sheet.write_string(0, col, name, bold)
    widths = [len(name) for name in header]
    for r, row in enumerate(rows, start=1):
        for col, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                text = "" if value is None else str(value)
                sheet.write_string(r, col, text)
                widths[col] = max(widths[col], len(text))
            else:
                sheet.write_number(r, col, value)
    for col, width in enumerate(widths):
        sheet.set_column(col, col, min(max(width + 2, 8), 48))
    sheet.freeze_panes(1, 0)
    book.close()
    return buffer.getvalue()
