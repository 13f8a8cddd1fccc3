"""Reading import files (CSV in UTF-8 with or without BOM, or XLSX) into header + rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from contest.errors import ImportProblem, ImportRejected

Table = tuple[list[str], list[dict[str, str | None]]]


def read_table(path: str | Path, data: bytes | None = None) -> Table:
    """Header (lower-cased, trimmed) and rows keyed by header; raises ImportRejected."""
    name = str(path).lower()
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError:
            raise ImportRejected([ImportProblem(0, "", "file_unreadable")]) from None
    if name.endswith(".xlsx"):
        return _read_xlsx(data)
    if name.endswith(".csv") or name.endswith(".txt"):
        return _read_csv(data)
    raise ImportRejected([ImportProblem(0, "", "file_type")])


def _rows(header_cells: list[object], body: list[list[object]]) -> Table:
    header = [str(h).strip().lower() if h is not None else "" for h in header_cells]
    rows: list[dict[str, str | None]] = []
    for cells in body:
        row: dict[str, str | None] = {}
        for index, column in enumerate(header):
            value = cells[index] if index < len(cells) else None
            row[column] = _to_text(value)
        rows.append(row)
    return header, rows


def _to_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_csv(data: bytes) -> Table:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRejected([ImportProblem(0, "", "not_utf8")]) from None
    # Only the delimiter is guessed; quoting stays Excel's ("" inside a quoted cell is ").
    try:
        delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), csv.excel, delimiter=delimiter)
    lines = list(reader)
    if not lines:
        raise ImportRejected([ImportProblem(1, "", "empty_file")])
    return _rows(list(lines[0]), [list(line) for line in lines[1:]])


def _read_xlsx(data: bytes) -> Table:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a damaged file
        raise ImportRejected([ImportProblem(0, "", "bad_xlsx")]) from None
    try:
        sheet = workbook.worksheets[0]
        lines = [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()
    if not lines:
        raise ImportRejected([ImportProblem(1, "", "empty_file")])
    return _rows(lines[0], lines[1:])
