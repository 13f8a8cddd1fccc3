"""``storage.files.read_table``: CSV (UTF-8, with or without BOM, any of , ; tab) and XLSX."""

from __future__ import annotations

import io
import unicodedata
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from contest.errors import ImportRejected
from contest.importing import validate_questions, validate_units
from storage.files import Row, read_table

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_QUESTIONS = ROOT / "storage" / "samples" / "questions.csv"

QUESTION_HEADER = ["topic", "question", "a", "b", "c", "answer"]


def table(path: str | Path, data: bytes | None = None) -> tuple[list[str], list[Row]]:
    """``read_table`` with its rows read (it yields them one by one)."""
    header, rows = read_table(path, data)
    return header, list(rows)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def xlsx(rows: list[list[object]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    workbook.close()
    return buffer.getvalue()


def cp1258(text: str) -> bytes:
    """Vietnamese as Windows writes it in cp1258: precomposed base letters, combining tones."""
    out = bytearray()
    for char in text:
        try:
            out += char.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        base, *marks = unicodedata.normalize("NFD", char)
        for index, mark in enumerate(marks):  # ô, ơ, ă... exist precomposed; tones do not
            composed = unicodedata.normalize("NFC", base + mark)
            if len(composed) == 1 and composed.encode("cp1258", errors="ignore"):
                base = composed
                del marks[index]
                break
        out += (base + "".join(marks)).encode("cp1258")
    return bytes(out)


def reasons(exc: pytest.ExceptionInfo[ImportRejected]) -> list[str]:
    return [p.reason for p in exc.value.problems]


# ------------------------------------------------------------------ CSV


def test_csv_with_bom(tmp_path: Path) -> None:
    data = "\ufefftopic,question,a,b,c,answer\nLuật,Câu hỏi một?,Một,Hai,Ba,a\n".encode()
    header, rows = table(write(tmp_path, "q.csv", data))
    assert header == QUESTION_HEADER  # no "\ufefftopic"
    assert rows == [
        {
            "topic": "Luật",
            "question": "Câu hỏi một?",
            "a": "Một",
            "b": "Hai",
            "c": "Ba",
            "answer": "a",
        }
    ]


def test_csv_without_bom_header_trimmed_and_lowercased(tmp_path: Path) -> None:
    data = " Code ,NAME,Kind,staff_count\nP-CATLINH,UBND phường Cát Linh,phuong,24\n".encode()
    header, rows = table(write(tmp_path, "u.csv", data))
    assert header == ["code", "name", "kind", "staff_count"]
    assert rows == [
        {"code": "P-CATLINH", "name": "UBND phường Cát Linh", "kind": "phuong", "staff_count": "24"}
    ]


def test_csv_semicolon_separated(tmp_path: Path) -> None:
    data = (
        "topic;question;a;b;c;answer\n"
        "CCHC;Theo Nghị quyết 76, mục tiêu là gì?;Một, hai;Ba;Bốn, năm;b\n"
        "CCHC;Câu 2: a, b, c?;x;y;z;c\n"
    ).encode()
    header, rows = table(write(tmp_path, "q.csv", data))
    assert header == QUESTION_HEADER
    assert [r["question"] for r in rows] == [
        "Theo Nghị quyết 76, mục tiêu là gì?",
        "Câu 2: a, b, c?",
    ]
    assert rows[0]["a"] == "Một, hai"
    assert rows[0]["c"] == "Bốn, năm"
    assert validate_questions(header, rows)[0].answer == 1


def test_csv_tab_separated(tmp_path: Path) -> None:
    data = "code\tname\tkind\tstaff_count\nP1\tPhòng A, B\tphong_ban\t7\n".encode()
    header, rows = table(write(tmp_path, "u.txt", data))
    assert header == ["code", "name", "kind", "staff_count"]
    assert rows[0]["name"] == "Phòng A, B"


def test_csv_quoted_commas_and_newlines_in_cells(tmp_path: Path) -> None:
    data = (
        "topic,question,a,b,c,answer\n"
        'Luật,"Theo Luật, điều nào\nquy định việc này?",'
        '"Điều 1, khoản 2","Điều 3; khoản 4",Điều 5,c\n'
        "Luật,Câu hai?,x,y,z,a\n"
    ).encode()
    header, rows = table(write(tmp_path, "q.csv", data))
    assert header == QUESTION_HEADER
    assert len(rows) == 2
    assert rows[0]["question"] == "Theo Luật, điều nào\nquy định việc này?"
    assert rows[0]["a"] == "Điều 1, khoản 2"
    assert rows[0]["b"] == "Điều 3; khoản 4"
    assert rows[0]["answer"] == "c"
    assert rows[1]["question"] == "Câu hai?"


def test_csv_windows_line_endings(tmp_path: Path) -> None:
    data = (
        "\ufeffcode,name,kind,staff_count\r\n"
        "P1,Phường Một,phuong,10\r\n"
        'P2,"Phòng Hai,\r\ndòng hai",phong_ban,20\r\n'
    ).encode()
    header, rows = table(write(tmp_path, "u.csv", data))
    assert header == ["code", "name", "kind", "staff_count"]
    assert [r["code"] for r in rows] == ["P1", "P2"]
    assert rows[0]["staff_count"] == "10"  # no stray "\r"
    assert rows[1]["name"] == "Phòng Hai,\r\ndòng hai"
    assert [u.staff_count for u in validate_units(header, rows)] == [10, 20]


def test_csv_short_rows_give_none(tmp_path: Path) -> None:
    data = b"code,name,kind,staff_count\nP1,Name\n"
    _, rows = table(write(tmp_path, "u.csv", data))
    assert rows == [{"code": "P1", "name": "Name", "kind": None, "staff_count": None}]


def test_csv_bytes_given_directly() -> None:
    header, rows = table("upload.CSV", b"code,name\nX,Y\n")
    assert header == ["code", "name"]
    assert rows == [{"code": "X", "name": "Y"}]


def test_csv_doubled_quotes_inside_a_quoted_cell(tmp_path: Path) -> None:
    data = (
        "topic,question,a,b,c,answer\n"
        'Luật,"Theo Luật ""Cán bộ, công chức"" năm 2008, ai là công chức?",x,y,z,a\n'
        "Luật,Câu hai?,x,y,z,b\n"
    ).encode()
    _, rows = table(write(tmp_path, "q.csv", data))
    assert rows[0]["question"] == 'Theo Luật "Cán bộ, công chức" năm 2008, ai là công chức?'
    assert rows[0]["a"] == "x"


def test_sample_questions_have_no_stray_quotes() -> None:
    _, rows = table(SAMPLE_QUESTIONS)
    assert len(rows) == 86
    quoted = [r["question"] for r in rows if '"' in (r["question"] or "")]
    assert quoted, "the sample has questions quoting a title"
    for text in quoted:
        assert text is not None
        assert '""' not in text
        assert not text.endswith('"')
    assert any(t.startswith('"Đề án 30" về') for t in quoted if t)


@pytest.mark.parametrize(
    "data",
    [
        cp1258("topic,question\nĐống Đa,Phường Cát Linh thuộc quận nào?\n"),
        "topic,question\nT,Qué?\n".encode("latin-1"),
        b"code,name\nP1,\xff\xfe\n",
    ],
    ids=["cp1258", "latin-1", "garbage"],
)
def test_csv_not_utf8_is_rejected(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ImportRejected) as exc:
        table(write(tmp_path, "q.csv", data))
    assert reasons(exc) == ["not_utf8"]


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf"], ids=["empty", "bom-only"])
def test_csv_empty_file(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ImportRejected) as exc:
        table(write(tmp_path, "q.csv", data))
    assert reasons(exc) == ["empty_file"]


def test_csv_header_only_has_no_rows(tmp_path: Path) -> None:
    header, rows = table(write(tmp_path, "u.csv", b"code,name,kind,staff_count\n"))
    assert header == ["code", "name", "kind", "staff_count"]
    assert rows == []
    with pytest.raises(ImportRejected) as exc:
        validate_units(header, rows)
    assert reasons(exc) == ["no_rows"]


# ------------------------------------------------------------------ other files


@pytest.mark.parametrize("name", ["q.ods", "q.xls", "q.json", "q"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    with pytest.raises(ImportRejected) as exc:
        table(write(tmp_path, name, b"code,name\nX,Y\n"))
    assert reasons(exc) == ["file_type"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImportRejected) as exc:
        table(tmp_path / "absent.csv")
    assert reasons(exc) == ["file_unreadable"]


# ------------------------------------------------------------------ XLSX


def test_xlsx_units_with_numeric_cells(tmp_path: Path) -> None:
    data = xlsx(
        [
            ["Code", " Name ", "KIND", "staff_count"],
            ["P-CATLINH", "UBND phường Cát Linh", "phuong", 25],
            ["PB-NOIVU", "Phòng Nội vụ", "phong_ban", 25.0],
            ["GD-1", "Trường Tiểu học A", "giao_duc", 12.5],
            ["GD-2", None, "giao_duc", None],
        ]
    )
    header, rows = table(write(tmp_path, "u.xlsx", data))
    assert header == ["code", "name", "kind", "staff_count"]
    assert [r["staff_count"] for r in rows] == ["25", "25", "12.5", None]
    assert rows[0]["name"] == "UBND phường Cát Linh"
    assert rows[3]["name"] is None
    with pytest.raises(ImportRejected) as exc:
        validate_units(header, rows)
    assert {(p.row, p.column, p.reason) for p in exc.value.problems} == {
        (4, "staff_count", "bad_count"),
        (5, "name", "empty"),
        (5, "staff_count", "empty"),
    }
    units = validate_units(header, rows[:2])
    assert [u.staff_count for u in units] == [25, 25]


def test_xlsx_questions_validate(tmp_path: Path) -> None:
    data = xlsx(
        [
            QUESTION_HEADER,
            ["Luật", "Câu hỏi, có dấu phẩy?", "Một", "Hai", "Ba", "B"],
            ["Luật", 'Câu "có ngoặc"?', 1, 2, 3, "c"],
        ]
    )
    header, rows = table(write(tmp_path, "Q.XLSX", data))
    assert rows[1]["a"] == "1"
    questions = validate_questions(header, rows)
    assert [q.answer for q in questions] == [1, 2]
    assert questions[1].text == 'Câu "có ngoặc"?'
    assert questions[1].options == ("1", "2", "3")


def test_xlsx_reads_first_sheet_only(tmp_path: Path) -> None:
    workbook = Workbook()
    first = workbook.active
    assert first is not None
    first.append(["code", "name"])
    first.append(["A", "Một"])
    second = workbook.create_sheet("khác")
    second.append(["other"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    workbook.close()
    header, rows = table(write(tmp_path, "u.xlsx", buffer.getvalue()))
    assert header == ["code", "name"]
    assert rows == [{"code": "A", "name": "Một"}]


@pytest.mark.parametrize(
    "data",
    [b"", b"PK\x03\x04 not really a zip", b"code,name\nX,Y\n"],
    ids=["zero-bytes", "broken-zip", "csv-named-xlsx"],
)
def test_xlsx_damaged(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ImportRejected) as exc:
        table(write(tmp_path, "u.xlsx", data))
    assert reasons(exc) == ["bad_xlsx"]


def test_xlsx_empty_workbook(tmp_path: Path) -> None:
    with pytest.raises(ImportRejected) as exc:
        table(write(tmp_path, "u.xlsx", xlsx([])))
    assert reasons(exc) == ["empty_file"]


def test_xlsx_and_csv_of_the_sample_read_alike(tmp_path: Path) -> None:
    header, rows = table(SAMPLE_QUESTIONS)
    data = xlsx([header] + [[row[column] for column in header] for row in rows])
    assert table(write(tmp_path, "q.xlsx", data)) == (header, rows)
    assert len(validate_questions(*table(write(tmp_path, "q.xlsx", data)))) == 86


def test_xlsx_as_excel_writes_it(tmp_path: Path) -> None:
    """Shared strings (rich text, phonetic runs, kept spaces), Excel's extra namespaces and
    row attributes, a chart sheet listed first, and a worksheet addressed from the root."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    files = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/'
        '2006/content-types"/>',
        "_rels/.rels": f'<Relationships xmlns="{pkg}"><Relationship Id="rId1" Type="{rel}/'
        'officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
        '<sheet name="Biểu đồ" sheetId="2" r:id="rId9"/>'
        '<sheet name="Đơn vị" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{pkg}">'
        f'<Relationship Id="rId9" Type="{rel}/chartsheet" Target="chartsheets/sheet1.xml"/>'
        f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="/xl/worksheets/data.xml"/>'
        f'<Relationship Id="rId3" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/>'
        "</Relationships>",
        "xl/chartsheets/sheet1.xml": "<chartsheet/>",
        "xl/sharedStrings.xml": f'<sst xmlns="{main}" count="5" uniqueCount="5">'
        "<si><t>code</t></si><si><t>name</t></si><si><t>kind</t></si>"
        '<si><t xml:space="preserve"> staff_count </t></si>'
        "<si><r><rPr><b/></rPr><t>UBND </t></r><r><t>phường Cát Linh</t></r>"
        "<rPh sb='0' eb='1'><t>ignored</t></rPh></si><si><t>phuong</t></si></sst>",
        "xl/worksheets/data.xml": f'<worksheet xmlns="{main}" xmlns:mc="http://schemas.'
        'openxmlformats.org/markup-compatibility/2006" xmlns:x14ac="http://schemas.microsoft'
        '.com/office/spreadsheetml/2009/9/ac" mc:Ignorable="x14ac"><dimension ref="A1:D3"/>'
        '<sheetData><row r="1" spans="1:4" x14ac:dyDescent="0.25"><c r="A1" t="s"><v>0</v>'
        '</c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c><c r="D1" t="s">'
        '<v>3</v></c></row><row r="3" spans="1:4"><c r="A3" t="inlineStr"><is><t>P-CATLINH'
        '</t></is></c><c r="B3" t="s" s="2"><v>4</v></c><c r="C3" t="s"><v>5</v></c>'
        '<c r="D3"><v>24</v></c></row></sheetData></worksheet>',
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    header, rows = table(write(tmp_path, "u.xlsx", buffer.getvalue()))
    assert header == ["code", "name", "kind", "staff_count"]
    assert rows == [
        {"code": None, "name": None, "kind": None, "staff_count": None},  # row 2, blank
        {
            "code": "P-CATLINH",
            "name": "UBND phường Cát Linh",
            "kind": "phuong",
            "staff_count": "24",
        },
    ]
