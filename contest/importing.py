"""Validation of question-bank and unit files, row by row, before anything is written."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from contest.errors import ImportProblem, ImportRejected
from contest.model import UnitKind
from contest.text import question_key

QUESTION_COLUMNS = ("topic", "question", "a", "b", "c", "answer")
UNIT_COLUMNS = ("code", "name", "kind", "staff_count")

# Field lengths, in characters of the text as stored (trimmed, inner spaces folded).
# The largest exam card is topic + question + 3 options = 100 + 800 + 3 * 300 = 1,800
# characters plus a frame of about 60: it fits one Telegram message (4,096 after HTML
# parsing, even when every character is outside the BMP and counts twice) and one Zalo text
# message (2,000 characters) with 150 characters left for a header and a footer. The
# database columns are larger still: questions.topic String(255), units.code String(64),
# units.name String(255); question and option texts are Text.
MAX_TOPIC_LEN = 100
MAX_QUESTION_LEN = 800
MAX_OPTION_LEN = 300
MAX_UNIT_CODE_LEN = 32
MAX_UNIT_NAME_LEN = 200
MAX_STAFF_COUNT = 100_000  # staff of one unit; also keeps the number in a 32-bit column
QUESTION_LIMITS = {
    "topic": MAX_TOPIC_LEN,
    "question": MAX_QUESTION_LEN,
    "a": MAX_OPTION_LEN,
    "b": MAX_OPTION_LEN,
    "c": MAX_OPTION_LEN,
}
UNIT_LIMITS = {"code": MAX_UNIT_CODE_LEN, "name": MAX_UNIT_NAME_LEN}

# Sizes. The bot caches the whole active bank (every attempt draws from it), so the bank is
# capped: a file with more question rows is refused while it is read, and an import that
# would bring the active bank above the cap is refused by ContestService.import_questions.
MAX_BANK_QUESTIONS = 5_000
MAX_UNITS = 2_000

# C0 and C1 control characters except tab, line feed and carriage return; UTF-16 surrogates
# (only an XLSX escape like _xD800_ can make one) and the noncharacters U+FFFE, U+FFFF.
_BAD_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


class FlaggedCell(str):
    """A cell the file reader could not read as plain text. ``reason`` is an import reason
    code (``formula``: a formula with no value stored); the text, if any, is what the cell
    holds (the formula). Validation reports the reason for it, never "empty"."""

    reason: str

    def __new__(cls, text: str, reason: str) -> FlaggedCell:
        cell = super().__new__(cls, text)
        cell.reason = reason
        return cell


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


def _numbered(rows: Iterable[Row], problems: list[ImportProblem]) -> Iterator[tuple[int, Row]]:
    """The rows with their file row numbers (the header is row 1). A reader that gives up
    part-way (it raises ImportRejected) adds its problems to those found so far."""
    iterator = iter(rows)
    try:
        for number in itertools.count(2):
            try:
                row = next(iterator)
            except StopIteration:
                return
            except ImportRejected as exc:
                problems.extend(exc.problems)
                return
            yield number, row
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # stop reading: an early stop leaves the rest of the file unread


class _Cells:
    """One row's cells, trimmed and inner spaces folded, with the problems of each cell.
    ``usable`` holds the columns whose text the row-level checks may look at."""

    def __init__(
        self, raw: Row, number: int, columns: tuple[str, ...], limits: Mapping[str, int]
    ) -> None:
        row = _normalized(raw)
        self.text: dict[str, str] = {}
        self.usable: set[str] = set()
        self.problems: list[ImportProblem] = []
        self.flagged = False  # a cell holds something that is not plain text
        for column in columns:
            value = row.get(column)
            if isinstance(value, FlaggedCell):
                self.text[column] = str(value)
                self.problems.append(ImportProblem(number, column, value.reason, str(value)))
                self.flagged = True
                continue
            value = value or ""
            bad = _BAD_CHAR.search(value)
            text = self.text[column] = " ".join(value.split())
            if bad is not None:
                code = f"U+{ord(bad.group()):04X}"
                self.problems.append(ImportProblem(number, column, "bad_char", code))
                self.flagged = True
                continue
            if not text:
                self.problems.append(ImportProblem(number, column, "empty"))
                continue
            limit = limits.get(column)
            if limit is not None and len(text) > limit:
                self.problems.append(ImportProblem(number, column, "too_long", str(limit)))
            self.usable.add(column)

    @property
    def blank(self) -> bool:
        return not self.flagged and not any(self.text.values())


def validate_questions(
    header: Iterable[str], rows: Iterable[Row], *, limit: int = MAX_BANK_QUESTIONS
) -> list[QuestionRow]:
    """Check every row; raise ImportRejected listing all problems, or return the rows.
    Reading stops at the first row over ``limit`` (blank rows aside)."""
    problems = _check_header(header, QUESTION_COLUMNS)
    if problems:
        raise ImportRejected(problems)
    result: list[QuestionRow] = []
    seen: dict[str, int] = {}
    counted = 0
    for number, raw in _numbered(rows, problems):
        cells = _Cells(raw, number, QUESTION_COLUMNS, QUESTION_LIMITS)
        if cells.blank:
            continue  # blank line
        counted += 1
        if counted > limit:
            problems.append(ImportProblem(number, "", "too_many_questions", str(limit)))
            break
        row_problems = cells.problems
        text = cells.text
        answer = text["answer"].lower()
        if "answer" in cells.usable and answer not in ("a", "b", "c"):
            row_problems.append(ImportProblem(number, "answer", "bad_answer", text["answer"]))
        options = (text["a"], text["b"], text["c"])
        if {"a", "b", "c"} <= cells.usable and len({o.casefold() for o in options}) < 3:
            row_problems.append(ImportProblem(number, "a", "duplicate_options"))
        if "question" in cells.usable:
            key = question_key(text["question"])
            if key in seen:
                row_problems.append(
                    ImportProblem(number, "question", "duplicate_question", str(seen[key]))
                )
            seen.setdefault(key, number)
        if row_problems:
            problems.extend(row_problems)
            continue
        result.append(QuestionRow(text["topic"], text["question"], options, "abc".index(answer)))
    if not result and not problems:
        problems.append(ImportProblem(2, "question", "no_rows"))
    if problems:
        raise ImportRejected(problems)
    return result


def validate_units(
    header: Iterable[str], rows: Iterable[Row], *, limit: int = MAX_UNITS
) -> list[UnitRow]:
    """Check every row; raise ImportRejected listing all problems, or return the rows.
    Reading stops at the first row over ``limit`` (blank rows aside)."""
    problems = _check_header(header, UNIT_COLUMNS)
    if problems:
        raise ImportRejected(problems)
    result: list[UnitRow] = []
    seen: dict[str, int] = {}
    kinds = {k.value for k in UnitKind}
    counted = 0
    for number, raw in _numbered(rows, problems):
        cells = _Cells(raw, number, UNIT_COLUMNS, UNIT_LIMITS)
        if cells.blank:
            continue
        counted += 1
        if counted > limit:
            problems.append(ImportProblem(number, "", "too_many_units", str(limit)))
            break
        row_problems = cells.problems
        text = cells.text
        code = text["code"].upper()
        if "code" in cells.usable:
            if code in seen:
                row_problems.append(
                    ImportProblem(number, "code", "duplicate_code", str(seen[code]))
                )
            seen.setdefault(code, number)
        kind = text["kind"].lower()
        if "kind" in cells.usable and kind not in kinds:
            row_problems.append(ImportProblem(number, "kind", "bad_kind", text["kind"]))
        staff = text["staff_count"]
        staff_count = 0
        if "staff_count" in cells.usable:
            try:
                staff_count = int(float(staff)) if staff.replace(".", "", 1).isdigit() else -1
                if float(staff) != staff_count:
                    staff_count = -1
            except (ValueError, OverflowError):  # "1e999" is a float, infinite
                staff_count = -1
            if staff_count <= 0:
                row_problems.append(ImportProblem(number, "staff_count", "bad_count", staff))
            elif staff_count > MAX_STAFF_COUNT:
                row_problems.append(
                    ImportProblem(number, "staff_count", "count_too_large", str(MAX_STAFF_COUNT))
                )
        if row_problems:
            problems.extend(row_problems)
            continue
        result.append(UnitRow(code, text["name"], UnitKind(kind), staff_count))
    if not result and not problems:
        problems.append(ImportProblem(2, "code", "no_rows"))
    if problems:
        raise ImportRejected(problems)
    return result
