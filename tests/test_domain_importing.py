"""Unit tests of question-bank and unit file validation."""

from __future__ import annotations

import pytest

from contest.errors import ImportProblem, ImportRejected
from contest.importing import (
    MAX_OPTION_LEN,
    MAX_QUESTION_LEN,
    QUESTION_COLUMNS,
    UNIT_COLUMNS,
    QuestionRow,
    UnitRow,
    validate_questions,
    validate_units,
)
from contest.model import UnitKind

Q_HEADER = list(QUESTION_COLUMNS)
U_HEADER = list(UNIT_COLUMNS)


def qrow(
    question: str = "Cải cách hành chính là gì?",
    a: str = "Một",
    b: str = "Hai",
    c: str = "Ba",
    answer: str = "a",
    topic: str = "Chung",
) -> dict[str, str | None]:
    return {"topic": topic, "question": question, "a": a, "b": b, "c": c, "answer": answer}


def urow(
    code: str = "PNV",
    name: str = "Phòng Nội vụ",
    kind: str = "phong_ban",
    staff_count: str = "12",
) -> dict[str, str | None]:
    return {"code": code, "name": name, "kind": kind, "staff_count": staff_count}


BLANK_Q: dict[str, str | None] = dict.fromkeys(QUESTION_COLUMNS, "")
BLANK_U: dict[str, str | None] = dict.fromkeys(UNIT_COLUMNS, None)


def problems_of(exc: pytest.ExceptionInfo[ImportRejected]) -> list[tuple[int, str, str]]:
    return [(p.row, p.column, p.reason) for p in exc.value.problems]


# ---------------------------------------------------------------- questions: good files


def test_good_question_rows_are_returned_in_order() -> None:
    rows = [
        qrow("Câu một?", "x", "y", "z", "a", topic="T1"),
        qrow("Câu hai?", "x", "y", "z", "b", topic="T2"),
        qrow("Câu ba?", "x", "y", "z", "c", topic="T1"),
    ]
    result = validate_questions(Q_HEADER, rows)
    assert result == [
        QuestionRow("T1", "Câu một?", ("x", "y", "z"), 0),
        QuestionRow("T2", "Câu hai?", ("x", "y", "z"), 1),
        QuestionRow("T1", "Câu ba?", ("x", "y", "z"), 2),
    ]


@pytest.mark.parametrize(("letter", "index"), [("A", 0), ("b", 1), ("C", 2), (" c ", 2)])
def test_answer_letter_in_any_case(letter: str, index: int) -> None:
    [row] = validate_questions(Q_HEADER, [qrow(answer=letter)])
    assert row.answer == index


def test_cells_are_trimmed_and_inner_spaces_folded() -> None:
    [row] = validate_questions(
        Q_HEADER, [qrow("  Câu   hỏi\n dài? ", " x ", "y  y", "z", topic=" Chủ đề ")]
    )
    assert row.text == "Câu hỏi dài?"
    assert row.options == ("x", "y y", "z")
    assert row.topic == "Chủ đề"


def test_header_order_and_extra_columns_do_not_matter() -> None:
    header = ["answer", "note", "c", "b", "a", "question", "topic"]
    row = {**qrow(answer="b"), "note": "ignored"}
    [parsed] = validate_questions(header, [row])
    assert parsed.answer == 1


def test_header_names_are_trimmed_for_the_check() -> None:
    header = [" topic", "question ", "a", "b", "c", "answer", ""]
    assert len(validate_questions(header, [qrow()])) == 1


def test_capitalised_header_is_read_like_its_lowercase_form() -> None:
    header = ["Topic", "Question", "A", "B", "C", "Answer"]
    row = dict(zip(header, ["Chung", "Câu hỏi?", "x", "y", "z", "a"], strict=True))
    assert validate_questions(header, [row]) == [
        QuestionRow("Chung", "Câu hỏi?", ("x", "y", "z"), 0)
    ]


def test_blank_lines_are_skipped_but_still_numbered() -> None:
    spaces: dict[str, str | None] = dict.fromkeys(QUESTION_COLUMNS, "   ")
    rows = [qrow("Một?"), BLANK_Q, spaces, qrow("Hai?", answer="x")]
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, rows)
    assert problems_of(caught) == [(5, "answer", "bad_answer")]


def test_blank_lines_alone_do_not_count_as_rows() -> None:
    rows = [BLANK_Q, qrow("Một?"), {}, qrow("Hai?")]
    assert [r.text for r in validate_questions(Q_HEADER, rows)] == ["Một?", "Hai?"]


def test_a_row_missing_keys_reads_as_empty_cells() -> None:
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, [{"topic": "T", "question": "Q?", "a": "x"}])
    assert problems_of(caught) == [(2, "b", "empty"), (2, "c", "empty"), (2, "answer", "empty")]


def test_question_lengths_at_the_limit_are_accepted() -> None:
    [row] = validate_questions(
        Q_HEADER,
        [qrow("q" * MAX_QUESTION_LEN, "a" * MAX_OPTION_LEN, "b" * MAX_OPTION_LEN, "c")],
    )
    assert len(row.text) == MAX_QUESTION_LEN


# ---------------------------------------------------------------- questions: bad files


def test_missing_columns_are_all_reported_on_row_one() -> None:
    with pytest.raises(ImportRejected) as caught:
        validate_questions(["topic", "question", "a"], [qrow()])
    assert problems_of(caught) == [
        (1, "b", "missing_column"),
        (1, "c", "missing_column"),
        (1, "answer", "missing_column"),
    ]


@pytest.mark.parametrize("column", QUESTION_COLUMNS)
def test_an_empty_cell_is_reported_with_its_column(column: str) -> None:
    row = qrow()
    row[column] = "  "
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, [qrow("Khác?"), row])
    assert problems_of(caught) == [(3, column, "empty")]


@pytest.mark.parametrize("letter", ["d", "1", "ab", "A.", "đ"])
def test_a_bad_answer_letter_is_reported(letter: str) -> None:
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, [qrow(answer=letter)])
    assert problems_of(caught) == [(2, "answer", "bad_answer")]
    assert caught.value.problems[0].value == letter


def test_a_duplicate_question_text_points_at_the_first_row() -> None:
    rows = [qrow("Câu hỏi A?"), qrow("Câu khác?"), qrow("  câu  HỎI a? ")]
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, rows)
    assert problems_of(caught) == [(4, "question", "duplicate_question")]
    assert caught.value.problems[0].value == "2"


@pytest.mark.parametrize(
    "options", [("Có", "có", "Không"), ("x", "y", "x"), ("A", "B", "b"), ("z", "z", "z")]
)
def test_duplicate_options_are_reported(options: tuple[str, str, str]) -> None:
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, [qrow(a=options[0], b=options[1], c=options[2])])
    assert problems_of(caught) == [(2, "a", "duplicate_options")]


def test_too_long_question_and_options_are_reported() -> None:
    row = qrow("q" * (MAX_QUESTION_LEN + 1), "a" * (MAX_OPTION_LEN + 1), "b", "c" * 400)
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, [row])
    assert problems_of(caught) == [
        (2, "question", "too_long"),
        (2, "a", "too_long"),
        (2, "c", "too_long"),
    ]


def test_every_problem_of_the_file_is_listed_at_once() -> None:
    rows = [
        qrow("Tốt một?"),
        qrow("Thiếu?", b=""),  # row 3
        qrow("Sai đáp án?", answer="e"),  # row 4
        BLANK_Q,  # row 5
        qrow("Tốt một?"),  # row 6, duplicate of row 2
        qrow("Trùng?", a="x", b="x"),  # row 7
        qrow("", topic="", answer="z"),  # row 8
        qrow("Tốt hai?"),  # row 9
    ]
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, rows)
    assert set(problems_of(caught)) == {
        (3, "b", "empty"),
        (4, "answer", "bad_answer"),
        (6, "question", "duplicate_question"),
        (7, "a", "duplicate_options"),
        (8, "topic", "empty"),
        (8, "question", "empty"),
        (8, "answer", "bad_answer"),
    }
    assert len(caught.value.problems) == 7
    assert [p.row for p in caught.value.problems] == sorted(p.row for p in caught.value.problems)


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, [BLANK_Q, BLANK_Q])
    assert problems_of(caught) == [(2, "question", "no_rows")]


def test_import_problem_compares_by_row_column_and_reason() -> None:
    assert ImportProblem(2, "a", "empty", "x") == ImportProblem(2, "a", "empty", "y")
    assert ImportProblem(2, "a", "empty") != ImportProblem(3, "a", "empty")
    assert len({ImportProblem(2, "a", "empty"), ImportProblem(2, "a", "empty", "z")}) == 1


# ---------------------------------------------------------------- units


def test_good_unit_rows() -> None:
    rows = [
        urow("pnv", "Phòng Nội vụ", "phong_ban", "12"),
        urow("P-LANGTHUONG", "UBND phường Láng Thượng", "PHUONG", " 25 "),
        urow("THCS-DD", "Trường THCS Đống Đa", "giao_duc", "40.0"),
    ]
    assert validate_units(U_HEADER, rows) == [
        UnitRow("PNV", "Phòng Nội vụ", UnitKind.DEPARTMENT, 12),
        UnitRow("P-LANGTHUONG", "UBND phường Láng Thượng", UnitKind.WARD, 25),
        UnitRow("THCS-DD", "Trường THCS Đống Đa", UnitKind.EDUCATION, 40),
    ]


def test_unit_blank_lines_are_skipped_but_numbered() -> None:
    rows = [urow("A"), BLANK_U, urow("B", kind="school")]
    with pytest.raises(ImportRejected) as caught:
        validate_units(U_HEADER, rows)
    assert problems_of(caught) == [(4, "kind", "bad_kind")]
    assert caught.value.problems[0].value == "school"


def test_unit_missing_columns() -> None:
    with pytest.raises(ImportRejected) as caught:
        validate_units(["code", "name"], [urow()])
    assert problems_of(caught) == [
        (1, "kind", "missing_column"),
        (1, "staff_count", "missing_column"),
    ]


@pytest.mark.parametrize("column", UNIT_COLUMNS)
def test_unit_empty_cell(column: str) -> None:
    row = urow()
    row[column] = None
    with pytest.raises(ImportRejected) as caught:
        validate_units(U_HEADER, [row])
    assert problems_of(caught) == [(2, column, "empty")]


@pytest.mark.parametrize("count", ["abc", "0", "-3", "2.5", "1e3", "1,000", "12 người", "0.0"])
def test_bad_staff_count(count: str) -> None:
    with pytest.raises(ImportRejected) as caught:
        validate_units(U_HEADER, [urow("X1"), urow("X2", staff_count=count)])
    assert problems_of(caught) == [(3, "staff_count", "bad_count")]
    assert caught.value.problems[0].value == count


@pytest.mark.parametrize(("count", "value"), [("1", 1), ("007", 7), ("3.0", 3), ("250", 250)])
def test_good_staff_count(count: str, value: int) -> None:
    [row] = validate_units(U_HEADER, [urow(staff_count=count)])
    assert row.staff_count == value


def test_duplicate_unit_code_ignores_case() -> None:
    with pytest.raises(ImportRejected) as caught:
        validate_units(U_HEADER, [urow("pnv"), urow("PTC"), urow(" PNV ")])
    assert problems_of(caught) == [(4, "code", "duplicate_code")]
    assert caught.value.problems[0].value == "2"


def test_every_unit_problem_is_listed_at_once() -> None:
    rows = [
        urow("A", kind="bad"),  # 2
        urow("B", staff_count="abc"),  # 3
        urow("A", name=""),  # 4
        urow("C", kind="", staff_count="-1"),  # 5
        urow("D"),  # 6 fine
    ]
    with pytest.raises(ImportRejected) as caught:
        validate_units(U_HEADER, rows)
    assert problems_of(caught) == [
        (2, "kind", "bad_kind"),
        (3, "staff_count", "bad_count"),
        (4, "name", "empty"),
        (4, "code", "duplicate_code"),
        (5, "kind", "empty"),
        (5, "staff_count", "bad_count"),
    ]


def test_an_empty_unit_file_is_refused() -> None:
    with pytest.raises(ImportRejected) as caught:
        validate_units(U_HEADER, [])
    assert problems_of(caught) == [(2, "code", "no_rows")]
