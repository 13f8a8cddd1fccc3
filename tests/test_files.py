"""``storage.files.read_table``: CSV (UTF-8, with or without BOM, any of , ; tab) and XLSX."""

from __future__ import annotations

import io
import unicodedata
from pathlib import Path

import pytest
from openpyxl import Workbook

from contest.errors import ImportRejected
from contest.importing import validate_questions, validate_units
from storage.files import read_table

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_QUESTIONS = ROOT / "storage" / "samples" / "questions.csv"

QUESTION_HEADER = ["topic", "question", "a", "b", "c", "answer"]


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
    header, rows = read_table(write(tmp_path, "q.csv", data))
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
    header, rows = read_table(write(tmp_path, "u.csv", data))
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
    header, rows = read_table(write(tmp_path, "q.csv", data))
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
    header, rows = read_table(write(tmp_path, "u.txt", data))
    assert header == ["code", "name", "kind", "staff_count"]
    assert rows[0]["name"] == "Phòng A, B"


def test_csv_quoted_commas_and_newlines_in_cells(tmp_path: Path) -> None:
    data = (
        "topic,question,a,b,c,answer\n"
        'Luật,"Theo Luật, điều nào\nquy định việc này?",'
        '"Điều 1, khoản 2","Điều 3; khoản 4",Điều 5,c\n'
        "Luật,Câu hai?,x,y,z,a\n"
    ).encode()
    header, rows = read_table(write(tmp_path, "q.csv", data))
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
    header, rows = read_table(write(tmp_path, "u.csv", data))
    assert header == ["code", "name", "kind", "staff_count"]
    assert [r["code"] for r in rows] == ["P1", "P2"]
    assert rows[0]["staff_count"] == "10"  # no stray "\r"
    assert rows[1]["name"] == "Phòng Hai,\r\ndòng hai"
    assert [u.staff_count for u in validate_units(header, rows)] == [10, 20]


def test_csv_short_rows_give_none(tmp_path: Path) -> None:
    data = b"code,name,kind,staff_count\nP1,Name\n"
    _, rows = read_table(write(tmp_path, "u.csv", data))
    assert rows == [{"code": "P1", "name": "Name", "kind": None, "staff_count": None}]


def test_csv_bytes_given_directly() -> None:
    header, rows = read_table("upload.CSV", b"code,name\nX,Y\n")
    assert header == ["code", "name"]
    assert rows == [{"code": "X", "name": "Y"}]


def test_csv_doubled_quotes_inside_a_quoted_cell(tmp_path: Path) -> None:
    data = (
        "topic,question,a,b,c,answer\n"
        'Luật,"Theo Luật ""Cán bộ, công chức"" năm 2008, ai là công chức?",x,y,z,a\n'
        "Luật,Câu hai?,x,y,z,b\n"
    ).encode()
    _, rows = read_table(write(tmp_path, "q.csv", data))
    assert rows[0]["question"] == 'Theo Luật "Cán bộ, công chức" năm 2008, ai là công chức?'
    assert rows[0]["a"] == "x"


def test_sample_questions_have_no_stray_quotes() -> None:
    _, rows = read_table(SAMPLE_QUESTIONS)
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
        read_table(write(tmp_path, "q.csv", data))
    assert reasons(exc) == ["not_utf8"]


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf"], ids=["empty", "bom-only"])
def test_csv_empty_file(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ImportRejected) as exc:
        read_table(write(tmp_path, "q.csv", data))
    assert reasons(exc) == ["empty_file"]


def test_csv_header_only_has_no_rows(tmp_path: Path) -> None:
    header, rows = read_table(write(tmp_path, "u.csv", b"code,name,kind,staff_count\n"))
    assert header == ["code", "name", "kind", "staff_count"]
    assert rows == []
    with pytest.raises(ImportRejected) as exc:
        validate_units(header, rows)
    assert reasons(exc) == ["no_rows"]


# ------------------------------------------------------------------ other files


@pytest.mark.parametrize("name", ["q.ods", "q.xls", "q.json", "q"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    with pytest.raises(ImportRejected) as exc:
        read_table(write(tmp_path, name, b"code,name\nX,Y\n"))
    assert reasons(exc) == ["file_type"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImportRejected) as exc:
        read_table(tmp_path / "absent.csv")
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
    header, rows = read_table(write(tmp_path, "u.xlsx", data))
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
    header, rows = read_table(write(tmp_path, "Q.XLSX", data))
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
    header, rows = read_table(write(tmp_path, "u.xlsx", buffer.getvalue()))
    assert header == ["code", "name"]
    assert rows == [{"code": "A", "name": "Một"}]


@pytest.mark.parametrize(
    "data",
    [b"", b"PK\x03\x04 not really a zip", b"code,name\nX,Y\n"],
    ids=["zero-bytes", "broken-zip", "csv-named-xlsx"],
)
def test_xlsx_damaged(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ImportRejected) as exc:
        read_table(write(tmp_path, "u.xlsx", data))
    assert reasons(exc) == ["bad_xlsx"]


def test_xlsx_empty_workbook(tmp_path: Path) -> None:
    with pytest.raises(ImportRejected) as exc:
        read_table(write(tmp_path, "u.xlsx", xlsx([])))
    assert reasons(exc) == ["empty_file"]
