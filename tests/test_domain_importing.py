"""Unit tests of question-bank and unit file validation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contest.errors import ImportProblem, ImportRejected
from contest.importing import (
    MAX_BANK_QUESTIONS,
    MAX_OPTION_LEN,
    MAX_QUESTION_LEN,
    MAX_TOPIC_LEN,
    MAX_UNIT_CODE_LEN,
    MAX_UNIT_NAME_LEN,
    MAX_UNITS,
    QUESTION_COLUMNS,
    UNIT_COLUMNS,
    FlaggedCell,
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


# ---------------------------------------------------------------- hostile content


def test_the_documented_limits() -> None:
    """The limits an exam card and the database columns are sized against (see the card
    length test in test_import_limits.py)."""
    assert (MAX_TOPIC_LEN, MAX_QUESTION_LEN, MAX_OPTION_LEN) == (100, 800, 300)
    assert (MAX_UNIT_CODE_LEN, MAX_UNIT_NAME_LEN) == (32, 200)
    assert (MAX_BANK_QUESTIONS, MAX_UNITS) == (5000, 2000)


def test_a_long_topic_is_refused() -> None:
    """A 4.8k-character topic was accepted; the exam card then exceeded 4,096 characters."""
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, [qrow(topic="Chủ đề " * 700)])
    assert problems_of(caught) == [(2, "topic", "too_long")]
    assert caught.value.problems[0].value == str(MAX_TOPIC_LEN)


def test_field_lengths_at_the_limits_are_accepted_and_one_more_is_not() -> None:
    at_limit = qrow("q" * MAX_QUESTION_LEN, "a" * MAX_OPTION_LEN, "b", "c", topic="t" * 100)
    assert len(validate_questions(Q_HEADER, [at_limit])) == 1
    over = qrow("q" * 801, "a", "b" * 301, "c", topic="t" * 101)
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, [over])
    assert problems_of(caught) == [
        (2, "topic", "too_long"),
        (2, "question", "too_long"),
        (2, "b", "too_long"),
    ]
    assert [p.value for p in caught.value.problems] == ["100", "800", "300"]


def test_unit_code_and_name_lengths() -> None:
    assert validate_units(U_HEADER, [urow("C" * 32, "N" * 200)])[0].code == "C" * 32
    with pytest.raises(ImportRejected) as caught:
        validate_units(U_HEADER, [urow("C" * 33, "N" * 201)])
    assert problems_of(caught) == [(2, "code", "too_long"), (2, "name", "too_long")]


def test_lengths_count_the_text_as_stored() -> None:
    """Spaces are folded before the count, as they are before the text is stored."""
    [row] = validate_questions(Q_HEADER, [qrow(topic="  Chủ   đề  " + " " * 500)])
    assert row.topic == "Chủ đề"


@pytest.mark.parametrize(
    ("char", "code"),
    [
        ("\x00", "U+0000"),
        ("\x07", "U+0007"),
        ("\x1f", "U+001F"),
        ("\x7f", "U+007F"),
        ("\x9b", "U+009B"),
        ("\ud800", "U+D800"),
        ("\uffff", "U+FFFF"),
    ],
)
def test_control_characters_are_refused_in_every_column(char: str, code: str) -> None:
    rows = [qrow(f"Câu{char}hỏi?"), qrow("Hai?", topic=f"T{char}"), qrow("Ba?", answer=f"a{char}")]
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, rows)
    assert problems_of(caught) == [
        (2, "question", "bad_char"),
        (3, "topic", "bad_char"),
        (4, "answer", "bad_char"),
    ]
    assert {p.value for p in caught.value.problems} == {code}
    with pytest.raises(ImportRejected) as caught:
        validate_units(U_HEADER, [urow(f"X{char}"), urow("Y", name=f"N{char}")])
    assert problems_of(caught) == [(2, "code", "bad_char"), (3, "name", "bad_char")]


def test_tab_and_line_breaks_are_not_control_characters_here() -> None:
    [row] = validate_questions(Q_HEADER, [qrow("Câu\thỏi\r\nhai\ndòng?")])
    assert row.text == "Câu hỏi hai dòng?"


def test_a_flagged_cell_is_reported_with_its_reason_not_as_empty() -> None:
    row: dict[str, str | None] = {**qrow(), "answer": FlaggedCell("=B2", "formula")}
    blank: dict[str, str | None] = {**qrow("Hai?"), "c": FlaggedCell("", "formula")}
    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, [row, blank, qrow("Ba?")])
    assert problems_of(caught) == [(2, "answer", "formula"), (3, "c", "formula")]
    assert caught.value.problems[0].value == "=B2"


def test_problems_raised_while_reading_join_those_found_so_far() -> None:
    def rows() -> Iterator[dict[str, str | None]]:
        yield qrow("Một?", answer="z")
        yield qrow("Hai?")
        raise ImportRejected([ImportProblem(4, "", "cell_too_large", "131072")])

    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, rows())
    assert problems_of(caught) == [(2, "answer", "bad_answer"), (4, "", "cell_too_large")]


def test_question_rows_over_the_cap_stop_the_reading() -> None:
    read: list[int] = []

    def rows() -> Iterator[dict[str, str | None]]:
        for n in range(10_000):
            read.append(n)
            yield BLANK_Q if n == 1 else qrow(f"Câu {n}?")

    with pytest.raises(ImportRejected) as caught:
        validate_questions(Q_HEADER, rows(), limit=50)
    assert problems_of(caught) == [(53, "", "too_many_questions")]
    assert caught.value.problems[0].value == "50"
    assert len(read) == 52  # blank lines do not count; nothing read past the first row over
    assert len(validate_questions(Q_HEADER, [qrow(f"Câu {n}?") for n in range(50)], limit=50)) == 50


def test_unit_rows_over_the_cap() -> None:
    rows = [urow(f"U{n}") for n in range(6)]
    with pytest.raises(ImportRejected) as caught:
        validate_units(U_HEADER, rows, limit=5)
    assert problems_of(caught) == [(7, "", "too_many_units")]


@pytest.mark.parametrize(
    ("count", "reason"), [("9" * 400, "bad_count"), ("100001", "count_too_large")]
)
def test_staff_counts_past_any_unit_are_refused(count: str, reason: str) -> None:
    """A 400-digit count raised OverflowError; a huge one overflowed the integer column."""
    with pytest.raises(ImportRejected) as caught:
        validate_units(U_HEADER, [urow(staff_count=count)])
    assert problems_of(caught) == [(2, "staff_count", reason)]
    assert validate_units(U_HEADER, [urow(staff_count="100000")])[0].staff_count == 100_000
