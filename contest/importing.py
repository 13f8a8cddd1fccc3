"""Validation of question-bank and unit files, row by row, before anything is written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from contest.errors import ImportProblem, ImportRejected
from contest.model import UnitKind
from contest.text import question_key

QUESTION_COLUMNS = ("topic", "question", "a", "b", "c", "answer")
UNIT_COLUMNS = ("code", "name", "kind", "staff_count")
MAX_QUESTION_LEN = 1000
MAX_OPTION_LEN = 300  # keeps an exam card far below Telegram's 4096 characters


@dataclass(frozen=True)
class QuestionRow:
    topic: str
    text: str
    options: tuple[str, str, str]
    answer: int


@dataclass(frozen=True)
class UnitRow:
    code: str
    name: str
    kind: UnitKind
    staff_count: int


Row = Mapping[str, str | None]


def _check_header(header: Iterable[str], expected: tuple[str, ...]) -> list[ImportProblem]:
    present = {h.strip().lower() for h in header if h}
    return [ImportProblem(1, col, "missing_column") for col in expected if col not in present]


def _normalized(row: Row) -> dict[str, str | None]:
    """Header names are matched trimmed and case-insensitively."""
    return {k.strip().lower(): v for k, v in row.items() if k}


def _cell(row: Row, column: str) -> str:
    value = row.get(column)
    return " ".join((value or "").split())


def validate_questions(header: Iterable[str], rows: Iterable[Row]) -> list[QuestionRow]:
    """Check every row; raise ImportRejected listing all problems, or return the rows."""
    problems = _check_header(header, QUESTION_COLUMNS)
    if problems:
        raise ImportRejected(problems)
    result: list[QuestionRow] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(rows, start=2):
        row = _normalized(raw)
        cells = {col: _cell(row, col) for col in QUESTION_COLUMNS}
        if not any(cells.values()):
            continue  # blank line
        row_problems = [
            ImportProblem(number, col, "empty") for col in QUESTION_COLUMNS if not cells[col]
        ]
        if len(cells["question"]) > MAX_QUESTION_LEN:
            row_problems.append(ImportProblem(number, "question", "too_long"))
        for col in ("a", "b", "c"):
            if len(cells[col]) > MAX_OPTION_LEN:
                row_problems.append(ImportProblem(number, col, "too_long"))
        answer = cells["answer"].lower()
        if answer and answer not in ("a", "b", "c"):
            row_problems.append(ImportProblem(number, "answer", "bad_answer", cells["answer"]))
        options = (cells["a"], cells["b"], cells["c"])
        if all(options) and len({o.casefold() for o in options}) < 3:
            row_problems.append(ImportProblem(number, "a", "duplicate_options"))
        key = question_key(cells["question"]) if cells["question"] else ""
        if key and key in seen:
            row_problems.append(
                ImportProblem(number, "question", "duplicate_question", str(seen[key]))
            )
        seen.setdefault(key, number)
        if row_problems:
            problems.extend(row_problems)
            continue
        result.append(QuestionRow(cells["topic"], cells["question"], options, "abc".index(answer)))
    if not result and not problems:
        problems.append(ImportProblem(2, "question", "no_rows"))
    if problems:
        raise ImportRejected(problems)
    return result


def validate_units(header: Iterable[str], rows: Iterable[Row]) -> list[UnitRow]:
    """Check every row; raise ImportRejected listing all problems, or return the rows."""
    problems = _check_header(header, UNIT_COLUMNS)
    if problems:
        raise ImportRejected(problems)
    result: list[UnitRow] = []
    seen: dict[str, int] = {}
    kinds = {k.value for k in UnitKind}
    for number, raw in enumerate(rows, start=2):
        row = _normalized(raw)
        cells = {col: _cell(row, col) for col in UNIT_COLUMNS}
        if not any(cells.values()):
            continue
        row_problems = [
            ImportProblem(number, col, "empty") for col in UNIT_COLUMNS if not cells[col]
        ]
        code = cells["code"].upper()
        if code and code in seen:
            row_problems.append(ImportProblem(number, "code", "duplicate_code", str(seen[code])))
        seen.setdefault(code, number)
        kind = cells["kind"].lower()
        if kind and kind not in kinds:
            row_problems.append(ImportProblem(number, "kind", "bad_kind", cells["kind"]))
        staff = cells["staff_count"]
        staff_count = 0
        if staff:
            try:
                staff_count = int(float(staff)) if staff.replace(".", "", 1).isdigit() else -1
                if float(staff) != staff_count:
                    staff_count = -1
            except ValueError:
                staff_count = -1
            if staff_count <= 0:
                row_problems.append(ImportProblem(number, "staff_count", "bad_count", staff))
        if row_problems:
            problems.extend(row_problems)
            continue
        result.append(UnitRow(code, cells["name"], UnitKind(kind), staff_count))
    if not result and not problems:
        problems.append(ImportProblem(2, "code", "no_rows"))
    if problems:
        raise ImportRejected(problems)
    return result
