"""Hostile import files: spreadsheet and zip bombs, oversized files and cells, control
characters, formulas without values, and files far larger than the bank may be.

Each hostile file is built here, byte by byte where openpyxl would refuse to write it. The
real check is that the file is refused with a Vietnamese reason; memory (tracemalloc peak of
Python allocations) and time are bounded generously enough for a noisy machine, far below
what the same files cost before (gigabytes, minutes).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from openpyxl import Workbook

from contest.errors import ImportProblem, ImportRejected
from contest.importing import (
    MAX_BANK_QUESTIONS,
    MAX_UNITS,
    QUESTION_COLUMNS,
    validate_questions,
    validate_units,
)
from contest.ui import texts
from storage.files import (
    MAX_COLUMNS,
    MAX_COMPRESSION_RATIO,
    MAX_FILE_BYTES,
    MAX_ROWS,
    MAX_UNCOMPRESSED_BYTES,
    read_table,
)

ROOT = Path(__file__).resolve().parent.parent
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
MB = 1024 * 1024

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    "</Types>"
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    f'<workbook xmlns="{MAIN_NS}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/'
    '2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets>'
    "</workbook>"
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>'
)


def column_letter(index: int) -> str:
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def inline_row(number: int, values: list[str]) -> str:
    cells = "".join(
        f'<c r="{column_letter(i)}{number}" t="inlineStr"><is><t>{v}</t></is></c>'
        for i, v in enumerate(values, start=1)
        if v
    )
    return f'<row r="{number}">{cells}</row>'


def sheet_xml(body: str, *, dimension: str = "A1:F2", prolog: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>{prolog}'
        f'<worksheet xmlns="{MAIN_NS}"><dimension ref="{dimension}"/>'
        f"<sheetData>{body}</sheetData></worksheet>"
    )


def shared_strings(strings: list[str]) -> str:
    items = "".join(f"<si><t>{s}</t></si>" for s in strings)
    return (
        f'<sst xmlns="{MAIN_NS}" count="{len(strings)}" uniqueCount="{len(strings)}">{items}</sst>'
    )


def package(
    sheet: str | Callable[[zipfile.ZipFile], None], strings: list[str] | None = None
) -> bytes:
    """A minimal XLSX (openpyxl reads it too); ``sheet`` is the sheet XML or a writer of it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", ROOT_RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        archive.writestr("xl/sharedStrings.xml", shared_strings(strings or []))
        if isinstance(sheet, str):
            archive.writestr("xl/worksheets/sheet1.xml", sheet)
        else:
            sheet(archive)
    return buffer.getvalue()


GOOD_ROWS = inline_row(1, list(QUESTION_COLUMNS)) + inline_row(
    2, ["Luật", "Câu hỏi một?", "Một", "Hai", "Ba", "a"]
)


def reasons(exc: pytest.ExceptionInfo[ImportRejected]) -> list[str]:
    return [p.reason for p in exc.value.problems]


def problems(exc: pytest.ExceptionInfo[ImportRejected]) -> list[tuple[int, str, str]]:
    return [(p.row, p.column, p.reason) for p in exc.value.problems]


def rejection(exc: pytest.ExceptionInfo[ImportRejected]) -> str:
    return texts.import_rejected(exc.value.problems)


class Budget:
    peak_bytes = 0
    seconds = 0.0


@contextmanager
def bounded(max_mb: float, max_seconds: float) -> Iterator[Budget]:
    """Python allocations (tracemalloc peak) and wall time of the block stay under bounds."""
    budget = Budget()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield budget
    finally:
        budget.seconds = time.perf_counter() - started
        budget.peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert budget.peak_bytes < max_mb * MB, f"peak {budget.peak_bytes / MB:.1f} MB"
    assert budget.seconds < max_seconds, f"took {budget.seconds:.1f} s"


def read_questions(name: str, data: bytes, **kwargs: int) -> list[object]:
    header, rows = read_table(name, data, **kwargs)
    return list(validate_questions(header, rows))


# ------------------------------------------------------------------ spreadsheet bombs


def test_a_declared_dimension_of_the_whole_grid_is_not_trusted() -> None:
    """1.6 KB declaring A1:XFD1048576 used to take 4 GB and die with MemoryError."""
    data = package(sheet_xml(GOOD_ROWS, dimension="A1:XFD1048576"))
    assert len(data) < 2000
    with bounded(max_mb=20, max_seconds=5):
        [question] = read_questions("bomb.xlsx", data)
    assert question.text == "Câu hỏi một?"  # type: ignore[attr-defined]


def test_a_real_cell_at_the_last_row_of_the_grid_is_refused() -> None:
    far = '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
    data = package(sheet_xml(GOOD_ROWS + far, dimension="A1:XFD1048576"))
    with bounded(max_mb=20, max_seconds=5), pytest.raises(ImportRejected) as exc:
        read_questions("bomb.xlsx", data)
    assert problems(exc)[-1] == (1048576, "", "too_many_rows")
    assert f"Dòng 1048576: tệp có quá nhiều dòng (tối đa {MAX_ROWS:,} dòng)".replace(
        ",", "."
    ) in rejection(exc)


def test_a_real_cell_beyond_the_column_cap_is_refused() -> None:
    wide = f'<row r="3"><c r="{column_letter(MAX_COLUMNS + 1)}3"><v>1</v></c></row>'
    data = package(sheet_xml(GOOD_ROWS + wide))
    with pytest.raises(ImportRejected) as exc:
        read_questions("wide.xlsx", data)
    assert problems(exc) == [(3, "", "too_many_columns")]
    assert f"Dòng 3: có dữ liệu ở quá {MAX_COLUMNS} cột" in rejection(exc)


def test_empty_styled_cells_far_away_do_not_count() -> None:
    styled = '<row r="900000" s="1" customFormat="1"><c r="XFD900000" s="1"/></row>'
    data = package(sheet_xml(GOOD_ROWS + styled, dimension="A1:XFD900000"))
    with bounded(max_mb=20, max_seconds=5):
        assert len(read_questions("styled.xlsx", data)) == 1


def write_padded_sheet(padding: int) -> Callable[[zipfile.ZipFile], None]:
    """A sheet whose XML holds ``padding`` bytes of whitespace: it inflates ~1000:1."""

    def write(archive: zipfile.ZipFile) -> None:
        head, tail = sheet_xml("\0").split("\0")
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(head.encode())
            sheet.write(GOOD_ROWS.encode())
            chunk = b" " * MB
            for _ in range(padding // MB):
                sheet.write(chunk)
            sheet.write(tail.encode())

    return write


def test_a_zip_bomb_is_refused_by_its_uncompressed_size() -> None:
    """A 5.9 MB zip bomb used more than 2.8 GB for over 10 minutes."""
    data = package(write_padded_sheet(400 * MB))
    assert len(data) < 1 * MB
    with bounded(max_mb=20, max_seconds=5), pytest.raises(ImportRejected) as exc:
        read_table("bomb.xlsx", data)
    assert reasons(exc) == ["xlsx_too_large"]
    limit = MAX_UNCOMPRESSED_BYTES // MB
    assert f"Tệp: nội dung tệp Excel khi giải nén vượt quá {limit} MB" in rejection(exc)


def test_an_absurd_compression_ratio_is_refused_under_the_size_cap() -> None:
    data = package(write_padded_sheet(20 * MB))
    assert len(data) * MAX_COMPRESSION_RATIO < 20 * MB
    with bounded(max_mb=20, max_seconds=5), pytest.raises(ImportRejected) as exc:
        read_table("bomb.xlsx", data)
    assert reasons(exc) == ["xlsx_compression"]
    assert "tỉ lệ nén bất thường" in rejection(exc)


def lie_about_size(data: bytes, name: bytes, declared: int) -> bytes:
    """Rewrite the uncompressed size of ``name`` in its local and central headers."""
    out = bytearray(data)
    local = out.find(b"PK\x03\x04" + b"\x14\x00")
    while local != -1:
        name_len = int.from_bytes(out[local + 26 : local + 28], "little")
        if out[local + 30 : local + 30 + name_len] == name:
            out[local + 22 : local + 26] = declared.to_bytes(4, "little")
        local = out.find(b"PK\x03\x04", local + 4)
    central = out.find(b"PK\x01\x02")
    while central != -1:
        name_len = int.from_bytes(out[central + 28 : central + 30], "little")
        if out[central + 46 : central + 46 + name_len] == name:
            out[central + 24 : central + 28] = declared.to_bytes(4, "little")
        central = out.find(b"PK\x01\x02", central + 4)
    return bytes(out)


def test_declared_sizes_are_not_trusted() -> None:
    honest = package(write_padded_sheet(200 * MB))
    data = lie_about_size(honest, b"xl/worksheets/sheet1.xml", 100_000)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sum(i.file_size for i in archive.infolist()) < MB  # the lie is in place
    with bounded(max_mb=20, max_seconds=5), pytest.raises(ImportRejected) as exc:
        list(read_table("liar.xlsx", data)[1])
    assert reasons(exc) == ["bad_xlsx"]


def test_xml_entities_are_refused() -> None:
    laughs = (
        '<!DOCTYPE worksheet [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    )
    body = inline_row(1, list(QUESTION_COLUMNS)) + inline_row(2, ["&d;", "Q?", "x", "y", "z", "a"])
    data = package(sheet_xml(body, prolog=laughs))
    with pytest.raises(ImportRejected) as exc:
        read_questions("laughs.xlsx", data)
    assert reasons(exc) == ["bad_xlsx"]


@pytest.mark.parametrize(
    "body",
    [
        "<x>" * 5000 + "</x>" * 5000,  # nesting: expat keeps a stack of open elements
        '<row r="1"><c r="A1" ' + " ".join(f'a{n}="1"' for n in range(200_000)) + "/></row>",
        GOOD_ROWS + '<row r="³"><c r="A3"><v>1</v></c></row>',  # a digit, not an ASCII one
    ],
    ids=["deep", "huge-tag", "odd-row-number"],
)
def test_pathological_xml_is_refused(body: str) -> None:
    data = package(sheet_xml(body))
    with bounded(max_mb=20, max_seconds=5), pytest.raises(ImportRejected) as exc:
        read_questions("odd.xlsx", data)
    assert reasons(exc) == ["bad_xlsx"]


def test_a_local_header_contradicting_the_directory_is_a_damaged_file() -> None:
    """Found by fuzzing: zipfile raised BadZipFile from open(), past the reader's guard."""
    data = bytearray(package(sheet_xml(GOOD_ROWS)))
    local = data.find(b"PK\x03\x04")
    while data[local + 30 : local + 30 + 24] != b"xl/worksheets/sheet1.xml":
        local = data.find(b"PK\x03\x04", local + 4)
    data[local + 30 + 3] = ord("W")  # the directory still says "worksheets"
    with pytest.raises(ImportRejected) as exc:
        read_questions("q.xlsx", bytes(data))
    assert reasons(exc) == ["bad_xlsx"]


def test_an_archive_of_many_entries_is_refused_before_zipfile_lists_them() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for n in range(30_000):
            archive.writestr(f"x/{n}", b"")
    with bounded(max_mb=5, max_seconds=2), pytest.raises(ImportRejected) as exc:
        read_table("many.xlsx", buffer.getvalue())
    assert reasons(exc) == ["bad_xlsx"]


def test_rows_are_read_one_by_one_not_as_a_list() -> None:
    """A sheet of 30,000 rows: the bank cap stops validation at the first row over it, and
    the reader has not built the rest of the sheet."""

    def write(archive: zipfile.ZipFile) -> None:
        head, tail = sheet_xml("\0").split("\0")
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(head.encode() + inline_row(1, list(QUESTION_COLUMNS)).encode())
            for n in range(2, 30_002):
                row = (
                    f'<row r="{n}"><c r="A{n}" t="s"><v>0</v></c><c r="B{n}" t="inlineStr">'
                    f'<is><t>Câu {n}?</t></is></c><c r="C{n}" t="s"><v>1</v></c>'
                    f'<c r="D{n}" t="s"><v>2</v></c><c r="E{n}" t="s"><v>3</v></c>'
                    f'<c r="F{n}" t="s"><v>4</v></c></row>'
                )
                sheet.write(row.encode())
            sheet.write(tail.encode())

    data = package(write, ["Luật", "Một", "Hai", "Ba", "a"])
    assert len(data) < 5 * MB
    with bounded(max_mb=15, max_seconds=10), pytest.raises(ImportRejected) as exc:
        read_questions("big.xlsx", data)
    assert problems(exc) == [(MAX_BANK_QUESTIONS + 2, "", "too_many_questions")]


# ------------------------------------------------------------------ formulas, characters


def test_a_formula_without_a_stored_value_is_reported_as_a_formula(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(list(QUESTION_COLUMNS))
    sheet.append(["Luật", "Câu hỏi một?", "Một", "Hai", "Ba", '=IF(1>0,"a","b")'])
    sheet.append(["Luật", "Câu hỏi hai?", "Một", "Hai", "Ba", "b"])
    buffer = io.BytesIO()
    workbook.save(buffer)  # openpyxl stores no computed value, as after a script edits a file
    with pytest.raises(ImportRejected) as exc:
        read_questions("f.xlsx", buffer.getvalue())
    assert problems(exc) == [(2, "answer", "formula")]
    assert (
        "Dòng 2, cột “answer”: ô chứa công thức chưa có giá trị tính sẵn; hãy dán giá trị "
        'thay cho công thức (giá trị: “=IF(1>0,"a","b")”)'
    ) in rejection(exc)


def test_a_formula_with_its_stored_value_gives_the_value() -> None:
    body = inline_row(1, list(QUESTION_COLUMNS)) + (
        '<row r="2"><c r="A2" t="s"><v>0</v></c><c r="B2" t="str"><f>"Câu"&amp;" một?"</f>'
        '<v>Câu một?</v></c><c r="C2"><f>1+1</f><v>2</v></c><c r="D2"><v>3</v></c>'
        '<c r="E2"><v>4.5</v></c><c r="F2" t="s"><f t="shared" si="0"/><v>1</v></c></row>'
    )
    header, rows = read_table("v.xlsx", package(sheet_xml(body), ["Luật", "b"]))
    [question] = validate_questions(header, rows)
    assert (question.topic, question.text, question.options, question.answer) == (
        "Luật",
        "Câu một?",
        ("2", "3", "4.5"),
        1,
    )


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x85", "\x0b"])
def test_control_characters_in_a_csv_are_refused(char: str) -> None:
    data = f"topic,question,a,b,c,answer\nLuật,Câu{char}hỏi?,x,y,z,a\nLuật,Hai?,x,y,z,b\n"
    with pytest.raises(ImportRejected) as exc:
        read_questions("q.csv", data.encode())
    assert problems(exc) == [(2, "question", "bad_char")]
    code = f"U+{ord(char):04X}"
    assert f"Dòng 2, cột “question”: có ký tự không hợp lệ (mã {code})" in rejection(exc)


def test_tabs_and_line_breaks_stay_allowed() -> None:
    data = 'topic,question,a,b,c,answer\nLuật,"Câu\thỏi\r\ndài?",x,y,z,a\n'
    [question] = read_questions("q.csv", data.encode())
    assert question.text == "Câu hỏi dài?"  # type: ignore[attr-defined]


@pytest.mark.parametrize("escaped", ["_x0000_", "_x001B_", "_xD800_"])
def test_control_characters_in_an_xlsx_are_refused(escaped: str) -> None:
    body = inline_row(1, list(QUESTION_COLUMNS)) + (
        '<row r="2"><c r="A2" t="s"><v>0</v></c><c r="B2" t="s"><v>1</v></c>'
        '<c r="C2" t="s"><v>2</v></c><c r="D2" t="s"><v>3</v></c><c r="E2" t="s"><v>4</v></c>'
        '<c r="F2" t="s"><v>5</v></c></row>'
    )
    strings = ["Luật", f"Câu{escaped}hỏi?", "x", "y", "z", "a"]
    with pytest.raises(ImportRejected) as exc:
        read_questions("q.xlsx", package(sheet_xml(body), strings))
    assert problems(exc) == [(2, "question", "bad_char")]


def test_excel_escapes_are_decoded() -> None:
    """Excel writes a carriage return as _x000D_ and a literal "_x" as _x005F_x."""
    body = inline_row(1, ["code", "name", "kind", "staff_count"]) + (
        '<row r="2"><c r="A2" t="inlineStr"><is><t>P_x005F_x0031_</t></is></c>'
        '<c r="B2" t="inlineStr"><is><r><t>Phòng</t></r><r><t xml:space="preserve">_x000D_'
        "\nMột</t></r><rPh><t>ふりがな</t></rPh></is></c>"
        '<c r="C2" t="inlineStr"><is><t>phong_ban</t></is></c><c r="D2"><v>7</v></c></row>'
    )
    header, rows = read_table("u.xlsx", package(sheet_xml(body)))
    [row] = list(rows)
    assert row == {
        "code": "P_x0031_",
        "name": "Phòng\r\nMột",
        "kind": "phong_ban",
        "staff_count": "7",
    }
    [unit] = validate_units(header, [row])
    assert unit.name == "Phòng Một"


# ------------------------------------------------------------------ CSV edge cases


def test_a_csv_cell_over_the_field_limit_is_a_clean_rejection() -> None:
    data = (
        "topic,question,a,b,c,answer\n"
        "Luật,Một?,x,y,z,a\n"
        "Luật,Hai?,x,y,z,q\n"
        f'Luật,"{"dài " * 50_000}",x,y,z,a\n'
        "Luật,Bốn?,x,y,z,a\n"
    ).encode()
    with pytest.raises(ImportRejected) as exc:
        read_questions("q.csv", data)
    assert problems(exc) == [(3, "answer", "bad_answer"), (4, "", "cell_too_large")]
    assert "Dòng 4: nội dung quá dài" in rejection(exc)


def test_a_csv_row_with_too_many_cells_is_refused() -> None:
    wide = ",".join(["x"] * (MAX_COLUMNS + 1))
    data = f"topic,question,a,b,c,answer\nLuật,Một?,x,y,z,a\n{wide}\n".encode()
    with pytest.raises(ImportRejected) as exc:
        read_questions("q.csv", data)
    assert problems(exc) == [(3, "", "too_many_columns")]


def test_a_csv_row_of_separators_is_refused_without_building_it() -> None:
    data = b"topic,question,a,b,c,answer\nLu,Q?,x,y,z,a\n" + b"," * (15 * MB) + b"\n"
    with bounded(max_mb=40, max_seconds=10), pytest.raises(ImportRejected) as exc:
        read_questions("q.csv", data)
    assert problems(exc) == [(3, "", "too_many_columns")]


def test_trailing_empty_csv_cells_do_not_count_as_columns() -> None:
    padding = "," * 200
    data = f"topic,question,a,b,c,answer{padding}\nLuật,Một?,x,y,z,a{padding}\n".encode()
    assert len(read_questions("q.csv", data)) == 1


def test_a_csv_with_too_many_rows_is_refused() -> None:
    data = b"code,name\n" + b"X,Y\n" * MAX_ROWS
    _, rows = read_table("u.csv", data)
    with pytest.raises(ImportRejected) as exc:
        list(rows)
    assert problems(exc) == [(MAX_ROWS + 1, "", "too_many_rows")]


def test_a_million_row_bank_stops_at_the_cap() -> None:
    """A million-row bank imported in 132 s using 4.8 GB; now validation stops reading at
    the first row over MAX_BANK_QUESTIONS."""
    lines = [b"topic,question,a,b,c,answer\n"]
    lines += [b"T,C%d?,x,y,z,a\n" % n for n in range(1_000_000)]
    data = b"".join(lines)
    del lines
    with bounded(max_mb=40, max_seconds=10), pytest.raises(ImportRejected) as exc:
        read_questions("big.csv", data, max_bytes=len(data))
    assert problems(exc) == [(MAX_BANK_QUESTIONS + 2, "", "too_many_questions")]
    assert "Dòng 5002: tệp có hơn 5.000 câu hỏi, vượt giới hạn của ngân hàng câu hỏi" in rejection(
        exc
    )


def test_a_unit_file_is_capped() -> None:
    data = b"code,name,kind,staff_count\n" + b"".join(
        b"U%d,Unit %d,phuong,5\n" % (n, n) for n in range(MAX_UNITS + 10)
    )
    header, rows = read_table("u.csv", data)
    with pytest.raises(ImportRejected) as exc:
        validate_units(header, rows)
    assert problems(exc) == [(MAX_UNITS + 2, "", "too_many_units")]
    assert "tệp có hơn 2.000 đơn vị" in rejection(exc)


# ------------------------------------------------------------------ whole-file size


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing to read if it is refused first
    with bounded(max_mb=5, max_seconds=2), pytest.raises(ImportRejected) as exc:
        read_table(path)
    assert reasons(exc) == ["file_too_large"]
    assert f"Tệp: tệp quá lớn (tối đa {MAX_FILE_BYTES // MB} MB)" in rejection(exc)


def test_the_size_cap_is_a_parameter_for_paths_and_bytes(tmp_path: Path) -> None:
    data = b"code,name\n" + b"X,Y\n" * 300
    path = tmp_path / "u.csv"
    path.write_bytes(data)
    for source in ({"path": path}, {"path": "u.csv", "data": data}):
        with pytest.raises(ImportRejected) as exc:
            read_table(**source, max_bytes=1024)  # type: ignore[arg-type]
        assert problems(exc) == [(0, "", "file_too_large")]
        assert "tệp quá lớn (tối đa 1 KB)" in rejection(exc)
        _, rows = read_table(**source, max_bytes=len(data))  # type: ignore[arg-type]
        assert len(list(rows)) == 300


def test_a_device_that_never_ends_is_read_no_further_than_the_cap(tmp_path: Path) -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    endless = tmp_path / "zero.csv"
    endless.symlink_to("/dev/zero")
    with bounded(max_mb=5, max_seconds=5), pytest.raises(ImportRejected) as exc:
        read_table(endless, max_bytes=1024)
    assert reasons(exc) == ["file_too_large"]


# ------------------------------------------------------------------ the command line


def test_the_cli_refuses_a_bomb_with_a_vietnamese_reason(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xlsx"
    far = '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
    bomb.write_bytes(package(sheet_xml(GOOD_ROWS + far, dimension="A1:XFD1048576")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEST_")}
    env.update(
        CONTEST_DATABASE_URL=f"sqlite:///{tmp_path / 'contest.db'}",
        CONTEST_CONFIG=str(ROOT / "contest.example.toml"),
        PYTHONIOENCODING="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "import-questions", str(bomb)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "Tệp bị từ chối, không có dữ liệu nào được ghi" in result.stderr
    assert "tệp có quá nhiều dòng" in result.stderr
    assert "Traceback" not in result.stderr


def test_problem_values_are_shortened_in_messages() -> None:
    problem = ImportProblem(2, "answer", "bad_answer", "x" * 5000)
    line = texts.import_problem(problem)
    assert len(line) < 200
    assert line.endswith("…”)")
