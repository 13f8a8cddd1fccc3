"""The organisers' workbook (``/xuat``, ``contest-bot export``): one XLSX file with

* «Thí sinh»: every registered person, ranked by :func:`contest.scoring.rank` on their
  counting attempt of the round (most correct, then shorter time, then earlier submission;
  equal scores share a rank), then those without a finished attempt, then the locked ones
  (with their lock and its reason, never ranked);
* «Các lần thi»: every attempt of every round, the counting ones marked;
* «Tham gia theo đơn vị»: each unit against the plan's quota (a leader and 30% of the staff)
  with its emulation figures, worst first (``contest.participation`` over ``SqlStats``);
* «Phân tích câu hỏi»: item analysis over the counting attempts of the ranked contestants:
  times drawn and answered, facility (share correct), the options chosen, and
  discrimination D = p(upper 27%) − p(lower 27%) of contestants in ranking order, with the
  questions to look at flagged (D < 0.2, facility < 20% or > 95%); voided ones marked;
* «Góp ý»: the contestants' feedback and the answers;
* «Nhật ký»: the audit log.

Vietnamese headers, times in Vietnam's time (Excel has no time zones), a frozen header row
with filter buttons, column widths that fit the text written.

How it is written, and why
--------------------------
XlsxWriter in ``constant_memory`` mode makes the workbook (the package, styles, frozen
panes, widths, filters, the shared strings) and keeps each sheet's rows in a temporary
file, never in memory. Its per-cell calls, though, cost about 8 µs of CPU a cell
(decorators, bounds checks, a cell object, an XML writer call): the 3.1 million cells of
100,000 contestants with two attempts each took 28 s of CPU on the benchmark machine,
against under 3 s rendered a row at a time. So rows are rendered here, as the same XML
XlsxWriter writes for ``write_number`` and ``write_string`` in constant_memory mode
(inline strings, its ``_xHHHH_`` escapes of control characters, ``xml:space="preserve"``,
texts cut at Excel's 32,767 characters), and go into the sheet's row file through
:class:`StreamedSheet`; a label (a group, a unit, a status: a few distinct texts repeated
on every row) is a shared string, its text written once by XlsxWriter. This leans on
XlsxWriter 3's internals (``Worksheet.fh``, ``previous_row``, ``table``,
``_check_dimensions``; ``Format._get_xf_index``; ``Workbook.str_table``): the dependency is
pinned below 4, and ``tests/test_export.py`` compares the rows byte for byte with what
XlsxWriter's own calls write.

Every text (names, units, questions, feedback, the log) is an inline string: a text
starting with ``=``, ``+``, ``-`` or ``@`` stays text, never a formula. Unlike XlsxWriter's
``write_string`` in this mode, a text shaped like ``<r>…</r>`` is escaped as well (XlsxWriter
copies such a text into the file as rich-text XML).

The big reads are streamed in batches; the ranking keeps one row per person. The
item analysis is one SQL aggregate (GROUP BY question over the counting attempts' items),
run on a second connection while the big sheets are written (SQLite: a plain connection in
a thread, the GIL released while SQLite works; PostgreSQL: the server works).

The file carries phone numbers: it is for the organisers only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.worksheet import Worksheet

from contest.errors import ContestError
from contest.model import AttemptResult, AttemptStatus, Group, Position, UnitKind
from contest.participation import UnitParticipation, evaluate, worst_first
from contest.ports import ExportedWorkbook, ExportRequest
from contest.rules import LOCAL_TZ, TieBreak
from contest.scoring import TIME_ONLY, TieRule, rank
from contest.ui.texts import GROUP_NAMES, KIND_NAMES, POSITION_NAMES
from storage import leases
from storage.presses import driver_utc

log = logging.getLogger(__name__)

__all__ = [
    "SHEETS",
    "Column",
    "StreamedSheet",
    "WorkerExporter",
    "Written",
    "inline_text",
    "write_workbook",
]

# ============================================================================ the sheets

# What a column holds. LABEL: text from a small set (a group, a unit, a status), escaped
# once per distinct value.
TEXT, LABEL, INT, NUMBER, SECONDS, PERCENT, TIME, DECIMAL = (
    "text",
    "label",
    "int",
    "number",
    "seconds",
    "percent",
    "time",
    "decimal",
)
TEXTS = (TEXT, LABEL)


@dataclass(frozen=True)
class Column:
    header: str
    kind: str
    width: float  # the narrowest it gets (characters); text columns widen to their text
    max_width: float = 60.0


CONTESTANTS = "Thí sinh"
ATTEMPTS = "Các lần thi"
UNITS = "Tham gia theo đơn vị"
ITEMS = "Phân tích câu hỏi"
FEEDBACK = "Góp ý"
AUDIT = "Nhật ký"
LOCAL = "(giờ Việt Nam)"

CONTESTANT_COLUMNS = (
    Column("Hạng", INT, 7),
    Column("Mã thí sinh", INT, 9),
    Column("Họ và tên", TEXT, 18, 40),
    Column("Đối tượng", LABEL, 12, 30),
    Column("Đơn vị / Phường", LABEL, 18, 60),
    Column("Chức vụ", LABEL, 10, 40),
    Column("Số câu đúng", INT, 8),
    Column("Tổng số câu", INT, 8),
    Column("Thời gian làm bài (giây)", SECONDS, 11),
    Column("Lần thi được tính", INT, 9),
    Column(f"Nộp bài lúc {LOCAL}", TIME, 19),
    Column("Số điện thoại", TEXT, 12, 20),
    Column(f"Đăng ký lúc {LOCAL}", TIME, 19),
    Column("Tình trạng", LABEL, 12, 40),
    Column(f"Khóa lúc {LOCAL}", TIME, 19),
    Column("Lý do khóa", TEXT, 12, 60),
    Column("Dự đoán", INT, 9),  # the prediction question's answer (tie rule with prediction)
)
ATTEMPT_COLUMNS = (
    Column("Mã thí sinh", INT, 9),
    Column("Họ và tên", TEXT, 18, 40),
    Column("Vòng", INT, 6),
    Column("Lần thi", INT, 7),
    Column("Trạng thái", LABEL, 10, 20),
    Column("Số câu đúng", INT, 8),
    Column("Thời gian làm bài (giây)", SECONDS, 11),
    Column(f"Bắt đầu lúc {LOCAL}", TIME, 19),
    Column(f"Kết thúc lúc {LOCAL}", TIME, 19),
    Column("Được tính", LABEL, 9, 12),
)
UNIT_COLUMNS = (
    Column("Mã đơn vị", TEXT, 10, 20),
    Column("Tên đơn vị", TEXT, 24, 60),
    Column("Khối", LABEL, 12, 45),
    Column("Số cán bộ, công chức, viên chức", INT, 13),
    Column("Đã đăng ký", INT, 10),
    Column("Đã dự thi", INT, 9),
    Column("Lãnh đạo đã dự thi", INT, 10),
    Column("Tỷ lệ tham gia", PERCENT, 10),
    Column("Số người cần dự thi (chỉ tiêu)", INT, 12),
    Column("Còn thiếu", INT, 9),
    Column("Có lãnh đạo dự thi", LABEL, 10, 12),
    Column("Đạt tỷ lệ tham gia", LABEL, 10, 12),
    Column("Đạt chỉ tiêu", LABEL, 9, 12),
    Column("Điểm trung bình (tỷ lệ câu đúng)", PERCENT, 13),
)
ITEM_COLUMNS = (
    Column("Mã câu hỏi", INT, 8),
    Column("Chủ đề", TEXT, 14, 40),
    Column("Câu hỏi", TEXT, 30, 80),
    Column("Phương án a", TEXT, 14, 40),
    Column("Phương án b", TEXT, 14, 40),
    Column("Phương án c", TEXT, 14, 40),
    Column("Đáp án đúng", TEXT, 8, 10),
    Column("Tình trạng câu hỏi", TEXT, 12, 40),
    Column("Số lần ra đề", INT, 9),
    Column("Số lần trả lời", INT, 9),
    Column("Số lần trả lời đúng", INT, 10),
    Column("Độ khó (tỷ lệ đúng)", PERCENT, 10),
    Column("Tỷ lệ đúng nhóm cao (27%)", PERCENT, 11),
    Column("Tỷ lệ đúng nhóm thấp (27%)", PERCENT, 11),
    Column("Độ phân biệt D (cao − thấp)", DECIMAL, 11),
    Column("Chọn a", PERCENT, 8),
    Column("Chọn b", PERCENT, 8),
    Column("Chọn c", PERCENT, 8),
    Column("Cần xem lại", TEXT, 14, 70),
)
FEEDBACK_COLUMNS = (
    Column("Mã góp ý", INT, 8),
    Column(f"Gửi lúc {LOCAL}", TIME, 19),
    Column("Mã thí sinh", INT, 9),
    Column("Họ và tên", TEXT, 18, 40),
    Column("Số điện thoại", TEXT, 12, 20),
    Column("Vòng", INT, 6),
    Column("Lần thi", INT, 7),
    Column("Câu số", INT, 6),
    Column("Mã câu hỏi", INT, 8),
    Column("Câu hỏi", TEXT, 20, 60),
    Column("Nội dung góp ý", TEXT, 30, 80),
    Column("Trạng thái", LABEL, 10, 20),
    Column("Trả lời của Ban Tổ chức", TEXT, 20, 80),
    Column("Người trả lời", TEXT, 12, 30),
    Column(f"Trả lời lúc {LOCAL}", TIME, 19),
    Column(f"Đóng lúc {LOCAL}", TIME, 19),
)
AUDIT_COLUMNS = (
    Column(f"Thời điểm {LOCAL}", TIME, 19),
    Column("Tài khoản", TEXT, 14, 30),
    Column("Tên hiển thị", TEXT, 14, 40),
    Column("Thao tác", LABEL, 10, 30),
    Column("Đối tượng", TEXT, 12, 60),
    Column("Kết quả", LABEL, 10, 12),
    Column("Chi tiết", TEXT, 12, 80),
)
SHEETS: dict[str, tuple[Column, ...]] = {
    CONTESTANTS: CONTESTANT_COLUMNS,
    ATTEMPTS: ATTEMPT_COLUMNS,
    UNITS: UNIT_COLUMNS,
    ITEMS: ITEM_COLUMNS,
    FEEDBACK: FEEDBACK_COLUMNS,
    AUDIT: AUDIT_COLUMNS,
}

GROUP_LABELS = {g.value: GROUP_NAMES[g] for g in Group}
POSITION_LABELS = {p.value: POSITION_NAMES[p] for p in Position}
KIND_LABELS = {k.value: KIND_NAMES[k] for k in UnitKind}
STATUS_LABELS = {
    AttemptStatus.IN_PROGRESS.value: "Đang làm bài",
    AttemptStatus.SUBMITTED.value: "Đã nộp bài",
    AttemptStatus.EXPIRED.value: "Hết giờ",
}
FEEDBACK_LABELS = {"open": "Chưa trả lời", "answered": "Đã trả lời", "closed": "Đã đóng"}
OUTCOME_LABELS = {"ok": "Thành công", "refused": "Bị từ chối", "failed": "Lỗi"}
RANKED = "Được xếp hạng"
NO_RESULT = "Chưa có bài thi hoàn thành"
LOCKED = "Bị khóa (không xếp hạng)"
YES, MET, MISSED = "Có", "✓", "✗"
KEYS = "abc"

# Item analysis: the share of contestants in each of the upper and lower groups, and what
# the question committee is asked to look at.
GROUP_SHARE_PERCENT = 27
LOW_DISCRIMINATION = 0.2
HARD_FACILITY, EASY_FACILITY = 0.20, 0.95

DEFAULT_BATCH_SIZE = 2_000

# ============================================================================ writing


class StreamedSheet(Worksheet):  # type: ignore[misc]  # XlsxWriter has no type hints
    """XlsxWriter's worksheet, in ``constant_memory`` mode, that also takes rows already
    rendered as XML (see the module's notes). XlsxWriter keeps such a sheet's rows in a
    temporary file (``fh`` until the workbook is closed) and copies it into the sheet when
    the workbook is closed; the rows rendered here go into that file, in order."""

    previous_row: int

    def write_rendered_rows(self, first: int, last: int, last_col: int, xml: str) -> None:
        """Rows ``first``..``last`` (0-based), columns 0..``last_col``, as ``<row>`` XML."""
        if not self.constant_memory:
            raise RuntimeError("rendered rows need a constant_memory workbook")
        if self.table or (first <= self.previous_row and self.dim_rowmax is not None):
            raise RuntimeError("rows must come in order, and only through this method")
        self.fh.write(xml)
        self._check_dimensions(first, 0)
        self._check_dimensions(last, last_col)
        self.previous_row = last


# What XlsxWriter escapes in a string (worksheet._write_cell, constant_memory): control
# characters as _xHHHH_ (and a literal _xHHHH_ with _x005F_), two non-characters, the XML
# specials; leading or trailing white space is kept with xml:space="preserve".
_NEEDS_CARE = re.compile(r"[&<>_\x00-\x08\x0b-\x1f\ufffe\uffff]|^\s|\s$")
_ESCAPE_ESCAPE = re.compile(r"(_x[0-9a-fA-F]{4}_)")
_CONTROL = re.compile(r"([\x00-\x08\x0b-\x1f])")
_MAX_UTF16 = 32_767  # Excel's longest text


def inline_text(value: str) -> str:
    """A text as the ``<t>`` element of an inline string, escaped as XlsxWriter does."""
    if len(value) > _MAX_UTF16 // 2:
        value = _truncate_utf16(value)
    if _NEEDS_CARE.search(value) is None:
        return "<t>" + value + "</t>"
    value = _ESCAPE_ESCAPE.sub(r"_x005F\1", value)
    value = _CONTROL.sub(lambda match: f"_x{ord(match.group(1)):04X}_", value)
    value = value.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
    preserve = value[:1].isspace() or value[-1:].isspace()
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return ('<t xml:space="preserve">' if preserve else "<t>") + value + "</t>"


def _truncate_utf16(value: str) -> str:
    units = value.encode("utf-16-le", "surrogatepass")
    if len(units) // 2 <= _MAX_UTF16:
        return value
    return units[: _MAX_UTF16 * 2].decode("utf-16-le", "ignore")


class _Styles:
    def __init__(self, book: Workbook) -> None:
        self.header = book.add_format(
            {
                "bold": True,
                "text_wrap": True,
                "valign": "vcenter",
                "bg_color": "#DDEBF7",
                "bottom": 1,
            }
        )
        formats = {
            TIME: book.add_format({"num_format": "dd/mm/yyyy hh:mm:ss"}),
            SECONDS: book.add_format({"num_format": "0.000"}),
            PERCENT: book.add_format({"num_format": "0.00%"}),
            DECIMAL: book.add_format({"num_format": "0.00"}),
        }
        self.indices = {kind: _xf(fmt) for kind, fmt in formats.items()}
        self.header_index = _xf(self.header)


def _xf(fmt: Format) -> int:
    # The index XlsxWriter gives a format when a cell first uses it.
    return int(fmt._get_xf_index())


INLINE = '" t="inlineStr"><is>'  # what follows a text cell's reference
HEADER_HEIGHT = 45  # points: three lines of wrapped header text


class SheetWriter:
    """One sheet being written: rows rendered by a function compiled for its columns and
    handed to XlsxWriter in batches; the longest text per column remembered, to fit the
    widths when the sheet is done."""

    def __init__(
        self,
        book: Workbook,
        styles: _Styles,
        title: str,
        columns: Sequence[Column],
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        sheet = book.add_worksheet(title, worksheet_class=StreamedSheet)
        assert isinstance(sheet, StreamedSheet)
        sheet.freeze_panes(1, 0)
        self.sheet = sheet
        self.columns = tuple(columns)
        self.batch_size = batch_size
        self.longest = [0] * len(self.columns)
        self.rows = 0  # data rows written
        self._pending: list[str] = []
        self._first = 0
        self.strings = book.str_table  # XlsxWriter's shared strings (written at close)
        self._render = self._renderer(styles)
        header = "".join(
            f'<c r="{xl_col_to_name(i)}1" s="{styles.header_index}" t="inlineStr"><is>'
            f"{inline_text(column.header)}</is></c>"
            for i, column in enumerate(self.columns)
        )
        self._pending.append(f'<row r="1" ht="{HEADER_HEIGHT}" customHeight="1">{header}</row>')

    def _renderer(self, styles: _Styles) -> Callable[[str, Sequence[Any]], str]:
        """The function that renders one row of this sheet (row number, values) as XML:
        a number as XlsxWriter's write_number writes it, a text as its write_string in
        constant_memory mode (an inline string), a label as a shared string (its text
        written once, in the workbook's table, by XlsxWriter); None and "" leave a cell
        empty. It is compiled from the columns, as ``collections.namedtuple`` compiles its
        class: a straight line of code per column renders a row a third faster than a
        function per cell, and the rows are the bulk of the export's time."""
        longest = self.longest
        env: dict[str, Any] = {"text": inline_text, "fmt": format, "longest": longest}
        names = ", ".join(f"v{i}" for i in range(len(self.columns)))
        code = [
            "def render(n, values):",
            f"    ({names},) = values",
            "    parts = ['<row r=\"', n, '\">']",
        ]
        for i, column in enumerate(self.columns):
            v, at = f"v{i}", repr('<c r="' + xl_col_to_name(i))
            if column.kind == TEXT:
                code += [
                    f"    if {v} is not None and {v} != '':",
                    f"        {v} = {v} if type({v}) is str else str({v})",
                    f"        if len({v}) > longest[{i}]:",
                    f"            longest[{i}] = len({v})",
                    f"        parts += ({at}, n, {INLINE!r}, text({v}), '</is></c>')",
                ]
            elif column.kind == LABEL:
                env[f"label{i}"] = self._label(i)
                code += [
                    f"    if {v} is not None and {v} != '':",
                    f"        parts += ({at}, n, label{i}({v}))",
                ]
            elif column.kind == INT:
                code.append(
                    f"    if {v} is not None: parts += ({at}, n, '\"><v>', str({v}), '</v></c>')"
                )
            else:
                style = "" if column.kind == NUMBER else f' s="{styles.indices[column.kind]}"'
                opening = repr(f'"{style}><v>')
                code.append(
                    f"    if {v} is not None: "
                    f"parts += ({at}, n, {opening}, fmt({v}, '.16G'), '</v></c>')"
                )
        code += ["    parts.append('</row>')", "    return ''.join(parts)"]
        exec(compile("\n".join(code), f"<row of {self.sheet.name}>", "exec"), env)
        render: Callable[[str, Sequence[Any]], str] = env["render"]
        return render

    def _label(self, position: int) -> Callable[[Any], str]:
        """A label's cell after its reference: the index of its text in the shared strings."""
        strings, longest = self.strings, self.longest
        known: dict[int, str] = {}

        def label(value: Any) -> str:
            if type(value) is not str:
                value = str(value)
            if value.startswith("<r>") and value.endswith("</r>"):
                # XlsxWriter's table would copy this text raw, as rich text: inline it.
                return INLINE + inline_text(value) + "</is></c>"
            index = strings._get_shared_string_index(value)
            rest = known.get(index)
            if rest is None:
                longest[position] = max(longest[position], len(value))
                rest = known[index] = f'" t="s"><v>{index}</v></c>'
            return rest

        return label

    def add(self, values: Sequence[Any]) -> None:
        """One row; None and "" leave a cell empty."""
        self.rows += 1
        self._pending.append(self._render(str(self.rows + 1), values))
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            last = self.rows  # 0-based index of the last row (the header is row 0)
            xml = "".join(self._pending)
            self.sheet.write_rendered_rows(self._first, last, len(self.columns) - 1, xml)
            self._pending.clear()
            self._first = last + 1

    def close(self) -> None:
        """Flush, fit the widths, put filter buttons on the header."""
        self.flush()
        for index, column in enumerate(self.columns):
            width = column.width
            if column.kind in TEXTS:
                width = min(max(width, self.longest[index] * 1.1 + 2), column.max_width)
            self.sheet.set_column(index, index, width)
        self.sheet.autofilter(0, 0, self.rows, len(self.columns) - 1)


# ============================================================================ times


class _Times:
    """Stored UTC times as Excel serial numbers (days since 30/12/1899) of Vietnam's local
    time, computed by the database. Asia/Ho_Chi_Minh has kept UTC+7 without daylight
    saving since 1975, so one offset serves every time of the contest (the tests check the
    cells against ``contest.rules.to_local``)."""

    def __init__(self, dialect: str, at: datetime) -> None:
        self.dialect = dialect
        offset = at.astimezone(LOCAL_TZ).utcoffset() or timedelta(0)
        self.offset = offset / timedelta(days=1)

    def __call__(self, column: str) -> str:
        """The SQL of ``column``'s serial number (NULL stays NULL)."""
        if self.dialect == "postgresql":
            # A naive timestamp's epoch is read as UTC; 25569 is 1/1/1970's serial.
            days = f"CAST(EXTRACT(EPOCH FROM {column}) AS DOUBLE PRECISION) / 86400.0"
            return f"({days} + {25569 + self.offset!r})"
        return f"(julianday({column}) - {2415018.5 - self.offset!r})"  # 2415018.5: 30/12/1899


# ============================================================================ reading


def _persons_sql(t: _Times) -> str:
    return f"""
    SELECT p.id, p.full_name, p."group", p.unit_id, p.ward_id, p.position, p.phone,
           {t("p.registered_at")}, {t("p.locked_at")}, p.lock_reason,
           a.id, a.number, a.correct_count, a.question_count, a.duration_seconds,
           a.finished_at, {t("a.finished_at")}, a.status, a.prediction
    FROM persons p
    LEFT JOIN attempts a ON a.person_id = p.id AND a.round = :round AND a.counting
    ORDER BY p.id
    """


def _attempts_sql(t: _Times) -> str:
    return f"""
    SELECT a.person_id, p.full_name, a.round, a.number, a.status, a.correct_count,
           a.duration_seconds, {t("a.started_at")}, {t("a.finished_at")},
           CASE WHEN a.counting AND p.locked_at IS NULL THEN 1 ELSE 0 END
    FROM attempts a JOIN persons p ON p.id = a.person_id
    ORDER BY a.person_id, a.round, a.number
    """


_QUESTIONS = """
    SELECT id, topic, text, option_a, option_b, option_c, answer, active, voided_at
    FROM questions ORDER BY id
    """


def _feedback_sql(t: _Times) -> str:
    return f"""
    SELECT f.id, {t("f.created_at")}, f.person_id, p.full_name, p.phone, a.round, a.number,
           f.position, f.question_id, q.text, f.text, f.status, f.answer, f.answered_by,
           {t("f.answered_at")}, {t("f.closed_at")}
    FROM feedback f
    JOIN persons p ON p.id = f.person_id
    LEFT JOIN attempts a ON a.id = f.attempt_id
    LEFT JOIN questions q ON q.id = f.question_id
    ORDER BY f.id
    """


def _audit_sql(t: _Times) -> str:
    return f"""
    SELECT {t("at")}, actor, actor_name, action, target, outcome, detail
    FROM audit_log ORDER BY id
    """


# Item analysis: the counting attempts of the ranked contestants (locked ones left out) in
# ranking order (contest.scoring.result_key: most correct, shorter time, earlier
# submission, then the attempt), the upper and lower 27% of them (rounded), and per
# question what their items say. One pass over the items, grouped by question.
ITEM_ANALYSIS = f"""
WITH counted AS (
    SELECT a.id,
           ROW_NUMBER() OVER (ORDER BY a.correct_count DESC, COALESCE(a.duration_seconds, 0),
                              a.finished_at, a.id) AS pos,
           COUNT(*) OVER () AS total
    FROM attempts a JOIN persons p ON p.id = a.person_id
    WHERE a.round = :round AND a.counting AND p.locked_at IS NULL
), grouped AS (
    SELECT id,
           CASE WHEN pos <= ({GROUP_SHARE_PERCENT} * total + 50) / 100 THEN 1
                WHEN pos > total - ({GROUP_SHARE_PERCENT} * total + 50) / 100 THEN 2
                ELSE 0 END AS grp,
           ({GROUP_SHARE_PERCENT} * total + 50) / 100 AS size
    FROM counted
)
SELECT i.question_id,
       COUNT(*) AS drawn,
       COUNT(i.choice) AS answered,
       SUM(CASE WHEN i.correct THEN 1 ELSE 0 END) AS correct,
       SUM(CASE WHEN g.grp = 1 THEN 1 ELSE 0 END) AS upper_drawn,
       SUM(CASE WHEN g.grp = 1 AND i.correct THEN 1 ELSE 0 END) AS upper_correct,
       SUM(CASE WHEN g.grp = 2 THEN 1 ELSE 0 END) AS lower_drawn,
       SUM(CASE WHEN g.grp = 2 AND i.correct THEN 1 ELSE 0 END) AS lower_correct,
       SUM(CASE WHEN substr(i.option_order, i.choice + 1, 1) = '0' THEN 1 ELSE 0 END),
       SUM(CASE WHEN substr(i.option_order, i.choice + 1, 1) = '1' THEN 1 ELSE 0 END),
       SUM(CASE WHEN substr(i.option_order, i.choice + 1, 1) = '2' THEN 1 ELSE 0 END),
       MAX(g.size) AS group_size
FROM grouped g JOIN attempt_items i ON i.attempt_id = g.id
GROUP BY i.question_id
"""


@dataclass(frozen=True)
class ItemStats:
    """What the counting attempts' items say about one question."""

    question_id: int
    drawn: int
    answered: int
    correct: int
    upper_drawn: int
    upper_correct: int
    lower_drawn: int
    lower_correct: int
    chosen: tuple[int, int, int]  # how often each of the bank's options a, b, c was chosen
    group_size: int  # contestants in each of the upper and lower groups

    @property
    def facility(self) -> float | None:
        """The share of correct answers among those who drew it (unanswered: wrong)."""
        return self.correct / self.drawn if self.drawn else None

    @property
    def upper(self) -> float | None:
        return self.upper_correct / self.upper_drawn if self.upper_drawn else None

    @property
    def lower(self) -> float | None:
        return self.lower_correct / self.lower_drawn if self.lower_drawn else None

    @property
    def discrimination(self) -> float | None:
        upper, lower = self.upper, self.lower
        return None if upper is None or lower is None else upper - lower


def _item_stats(rows: Sequence[Sequence[Any]]) -> dict[int, ItemStats]:
    found = {}
    for row in rows:
        v = [int(value or 0) for value in row]
        found[v[0]] = ItemStats(
            question_id=v[0],
            drawn=v[1],
            answered=v[2],
            correct=v[3],
            upper_drawn=v[4],
            upper_correct=v[5],
            lower_drawn=v[6],
            lower_correct=v[7],
            chosen=(v[8], v[9], v[10]),
            group_size=v[11],
        )
    return found


async def item_analysis(engine: AsyncEngine, round_number: int) -> dict[int, ItemStats]:
    """The item analysis of a round, on a connection of its own (see the module's notes)."""
    params = {"round": round_number}
    path = _sqlite_file(engine)
    if path is not None:
        return _item_stats(await asyncio.to_thread(_sqlite_rows, path, ITEM_ANALYSIS, params))
    async with engine.connect() as connection:
        conn = await _read_only(connection)
        return _item_stats((await conn.execute(text(ITEM_ANALYSIS), params)).all())


def _sqlite_file(engine: AsyncEngine) -> str | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    return database if database and database != ":memory:" else None


def _sqlite_rows(path: str, sql: str, params: dict[str, Any]) -> list[Any]:
    """A read on a plain SQLite connection, for a thread: SQLite releases the GIL while it
    works, so the event loop's thread goes on writing meanwhile."""
    connection = sqlite3.connect(path, timeout=30)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


async def _read_only(connection: AsyncConnection) -> AsyncConnection:
    """One read transaction for the whole workbook: a deferred BEGIN on SQLite (see
    storage.db: it never holds up the bot's writers), a snapshot on PostgreSQL."""
    if connection.dialect.name == "postgresql":
        return await connection.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
    return await connection.execution_options(contest_write=False)


async def participation(engine: AsyncEngine, request: ExportRequest) -> list[UnitParticipation]:
    """Every unit against the quota, worst first: what ``Stats.participation`` shows."""
    from storage.uow import SqlUnitOfWorkFactory  # the whole storage: only when needed

    async with SqlUnitOfWorkFactory(engine)(write=False) as uow:
        counts = await uow.stats.unit_counts(request.round)
    return worst_first([evaluate(c, request.quota) for c in counts])


# ============================================================================ the workbook


@dataclass(frozen=True)
class Written:
    """What a workbook holds."""

    contestants: int
    ranked: int
    attempts: int
    questions: int


async def write_workbook(
    engine: AsyncEngine,
    request: ExportRequest,
    target: str | os.PathLike[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Written:
    """Write the organisers' workbook of ``request.round`` to the file ``target``."""
    if batch_size < 1:
        raise ValueError("batch_size must be a positive integer")
    times = _Times(engine.dialect.name, request.at)
    items = asyncio.create_task(item_analysis(engine, request.round))
    try:
        units_rows = await participation(engine, request)
        with tempfile.TemporaryDirectory(prefix="contest-export-") as scratch:
            book = Workbook(
                os.fspath(target),
                {"constant_memory": True, "tmpdir": scratch, "use_zip64": True},
            )
            book.set_properties(
                {
                    "title": f"Dữ liệu cuộc thi, vòng {request.round}",
                    "author": "Bot cuộc thi tìm hiểu công tác cải cách hành chính",
                    "created": request.at.astimezone(LOCAL_TZ).replace(tzinfo=None),
                }
            )
            styles = _Styles(book)
            sheets = {
                title: SheetWriter(book, styles, title, columns, batch_size)
                for title, columns in SHEETS.items()
            }
            async with engine.connect() as connection:
                conn = await _read_only(connection)
                units = (await conn.exec_driver_sql("SELECT id, name FROM units")).all()
                names: dict[int, str] = {int(unit[0]): str(unit[1]) for unit in map(tuple, units)}
                ranked = await _contestants(
                    conn,
                    sheets[CONTESTANTS],
                    request.round,
                    names,
                    times,
                    batch_size,
                    TieRule(tuple(TieBreak(b) for b in request.tie_break), request.official),
                )
                await _stream(conn, _attempts_sql(times), sheets[ATTEMPTS], _attempt, batch_size)
                _units(sheets[UNITS], units_rows)
                questions = await _questions(conn, sheets[ITEMS], await items)
                await _stream(conn, _feedback_sql(times), sheets[FEEDBACK], _feedback, batch_size)
                await _stream(conn, _audit_sql(times), sheets[AUDIT], _audit, batch_size)
            for sheet in sheets.values():
                sheet.close()
            book.close()
    finally:
        if not items.done():
            items.cancel()
    return Written(
        contestants=sheets[CONTESTANTS].rows,
        ranked=ranked,
        attempts=sheets[ATTEMPTS].rows,
        questions=questions,
    )


async def _stream(
    conn: AsyncConnection,
    sql: str,
    out: SheetWriter,
    row_of: Callable[[Any], Sequence[Any]],
    batch_size: int,
    params: dict[str, Any] | None = None,
) -> None:
    """Every row of a query, in batches, into a sheet."""
    stream = await conn.stream(text(sql), params or {})
    add = out.add
    async for rows in stream.partitions(batch_size):
        for row in rows:
            add(row_of(row))
        await asyncio.sleep(0)


_STATUSES = {status.value: status for status in AttemptStatus}


async def _contestants(
    conn: AsyncConnection,
    out: SheetWriter,
    round_number: int,
    unit_names: dict[int, str],
    times: _Times,
    batch_size: int,
    rule: TieRule = TIME_ONLY,
) -> int:
    """Every registered person: the ranked in rank order (by ``rule``, the tie rule in
    force), then those without a finished attempt, then the locked. Returns how many are
    ranked."""
    rows_of: dict[int, list[Any]] = {}  # person -> the row, its rank still to fill in
    results: list[AttemptResult] = []
    waiting: list[int] = []
    locked: list[int] = []
    groups, positions, civil = GROUP_LABELS, POSITION_LABELS, Group.CIVIL_SERVANT.value
    stream = await conn.stream(text(_persons_sql(times)), {"round": round_number})
    async for rows in stream.partitions(batch_size):
        for (
            person_id,
            name,
            group,
            unit_id,
            ward_id,
            position,
            phone,
            registered_at,
            locked_at,
            lock_reason,
            attempt_id,
            number,
            correct,
            total,
            duration,
            finished_at,
            finished_serial,
            status,
            prediction,
        ) in rows:
            place = unit_id if group == civil else ward_id
            if locked_at is not None:
                state = LOCKED
                locked.append(person_id)
            elif attempt_id is None:
                state = NO_RESULT
                waiting.append(person_id)
            else:
                state = RANKED
                results.append(
                    AttemptResult(
                        attempt_id,
                        person_id,
                        round_number,
                        number,
                        correct,
                        total,
                        duration or 0.0,
                        driver_utc(finished_at),
                        _STATUSES[status],
                        prediction,
                    )
                )
            rows_of[person_id] = [
                None,
                person_id,
                name,
                groups.get(group, group),
                unit_names.get(place) if place is not None else None,
                positions.get(position) if position else None,
                correct,
                total,
                duration,
                number,
                finished_serial,
                phone,
                registered_at,
                state,
                locked_at,
                lock_reason if locked_at is not None else None,
                prediction,
            ]
        await asyncio.sleep(0)
    ranking = rank(results, rule)
    del results
    add = out.add
    for place_in_ranking, result in ranking:
        row = rows_of[result.person_id]
        row[0] = place_in_ranking
        add(row)
    for person_id in waiting:
        add(rows_of[person_id])
    for person_id in locked:
        add(rows_of[person_id])
    return len(ranking)


_IN_PROGRESS = AttemptStatus.IN_PROGRESS.value


def _attempt(row: Any) -> tuple[Any, ...]:
    person_id, name, round_number, number, status, correct, duration, started, ended, counts = row
    done = status != _IN_PROGRESS
    return (
        person_id,
        name,
        round_number,
        number,
        STATUS_LABELS.get(status, status),
        correct if done else None,
        duration if done else None,
        started,
        ended,
        YES if counts else None,
    )


def _units(out: SheetWriter, rows: Sequence[UnitParticipation]) -> None:
    for row in rows:
        unit = row.unit
        out.add(
            (
                unit.code,
                unit.name,
                KIND_LABELS.get(unit.kind.value, unit.kind.value),
                unit.staff_count,
                row.registered,
                row.participants,
                row.leaders,
                row.rate,
                row.needed,
                row.missing,
                MET if row.leader_ok else MISSED,
                MET if row.rate_ok else MISSED,
                MET if row.meets_quota else MISSED,
                row.average_best,
            )
        )


def review_notes(stats: ItemStats | None, voided: bool) -> str:
    """What the question committee should look at (Vietnamese), or ""."""
    if voided or stats is None or not stats.drawn:
        return ""
    notes = []
    d = stats.discrimination
    if d is not None and d < 0:
        notes.append("D âm: nhóm cao làm sai nhiều hơn nhóm thấp (kiểm tra đáp án)")
    elif d is not None and d < LOW_DISCRIMINATION:
        notes.append("độ phân biệt thấp (D < 0,2)")
    facility = stats.facility
    if facility is not None and facility < HARD_FACILITY:
        notes.append("quá khó (dưới 20% trả lời đúng)")
    elif facility is not None and facility > EASY_FACILITY:
        notes.append("quá dễ (trên 95% trả lời đúng)")
    joined = "; ".join(notes)
    return joined[:1].upper() + joined[1:]


async def _questions(conn: AsyncConnection, out: SheetWriter, stats: dict[int, ItemStats]) -> int:
    """One row per question of the bank in use or drawn: those to look at first (lowest
    discrimination first), then the others, voided ones last."""
    rows = []
    for row in (await conn.exec_driver_sql(_QUESTIONS)).all():
        qid, topic, question, a, b, c, answer, active, voided_at = tuple(row)
        found = stats.get(qid)
        if not active and found is None:
            continue
        voided = voided_at is not None
        notes = review_notes(found, voided)
        if voided:
            state = "Đã hủy (tính đúng cho mọi thí sinh)"
        else:
            state = "Đang dùng" if active else "Đã rút khỏi ngân hàng"
        d = found.discrimination if found else None
        answered = found.answered if found else 0
        shares: tuple[float | None, ...] = (None, None, None)
        if found is not None and answered:
            shares = tuple(n / answered for n in found.chosen)
        key = KEYS[answer] if isinstance(answer, int) and 0 <= answer < len(KEYS) else ""
        order = (voided, not notes, d if d is not None else 2.0, qid)
        values = (
            qid,
            topic,
            question,
            a,
            b,
            c,
            key,
            state,
            found.drawn if found else 0,
            answered,
            found.correct if found else 0,
            found.facility if found else None,
            found.upper if found else None,
            found.lower if found else None,
            d,
            *shares,
            notes,
        )
        rows.append((order, values))
    rows.sort(key=lambda pair: pair[0])
    for _, values in rows:
        out.add(values)
    return len(rows)


def _feedback(row: Any) -> tuple[Any, ...]:
    (
        feedback_id,
        created_at,
        person_id,
        name,
        phone,
        round_number,
        number,
        position,
        question_id,
        question,
        body,
        status,
        answer,
        answered_by,
        answered_at,
        closed_at,
    ) = row
    return (
        feedback_id,
        created_at,
        person_id,
        name,
        phone,
        round_number,
        number,
        position + 1 if position is not None else None,
        question_id,
        question,
        body,
        FEEDBACK_LABELS.get(status, status),
        answer,
        answered_by,
        answered_at,
        closed_at,
    )


def _audit(row: Any) -> tuple[Any, ...]:
    at, actor, actor_name, action, target, outcome, detail = row
    return (at, actor, actor_name, action, target, OUTCOME_LABELS.get(outcome, outcome), detail)


# ============================================================================ the port


class ExportFailed(Exception):
    """The worker process did not make the workbook (its exit code and last words)."""


WORKER_MODULE = "storage.export_worker"
WORKER_TIMEOUT = 15 * 60.0  # seconds; a city's contest takes well under a minute
WORKER_NICENESS = 10  # the worker yields the CPU to the bot answering contestants
EXPORT_LEASE = "export"
EXPORT_LEASE_SECONDS = 30.0


class WorkerExporter:
    """``contest.ports.Exporter``: the workbook made by a worker process
    (``python -m storage.export_worker``) that opens its own engine on the same database
    and writes a temporary file, so the bot's event loop and its GIL stay free for the
    contestants. The database URL goes to the worker on its standard input, not on its
    command line (which every user of the machine can read)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        timeout: float = WORKER_TIMEOUT,
        niceness: int = WORKER_NICENESS,
    ) -> None:
        self.engine = engine
        self.timeout = timeout
        self.niceness = niceness

    async def job(self, request: ExportRequest, output: str) -> dict[str, Any]:
        """What the worker is told: where the database is, what to write, where."""
        engine = self.engine
        url = engine.url.render_as_string(hide_password=False)
        search_path = None
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                search_path = str(await conn.scalar(text("SHOW search_path")))
        elif _sqlite_file(engine) is None:
            raise ContestError("export_unavailable")  # an in-memory database: no worker
        return {
            "database_url": url,
            "search_path": search_path,
            "round": request.round,
            "min_leaders": request.quota.min_leaders,
            "min_staff_ratio": request.quota.min_staff_ratio,
            "at": request.at.isoformat(),
            "tie_break": list(request.tie_break),
            "official": request.official,
            "output": output,
            "niceness": self.niceness,
        }

    async def workbook(self, request: ExportRequest) -> ExportedWorkbook:
        began = time.perf_counter()
        handle, output = tempfile.mkstemp(prefix="contest-export-", suffix=".xlsx")
        os.close(handle)
        try:
            job = json.dumps(await self.job(request, output)).encode()
            async with self.turn():
                summary = await self.run(job)
            data = await asyncio.to_thread(Path(output).read_bytes)
        finally:
            Path(output).unlink(missing_ok=True)
        return ExportedWorkbook(
            data=data,
            contestants=int(summary["contestants"]),
            ranked=int(summary["ranked"]),
            attempts=int(summary["attempts"]),
            questions=int(summary["questions"]),
            seconds=time.perf_counter() - began,
        )

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """One workbook at a time across the bot's processes (several on PostgreSQL): the
        ``export`` lease, renewed while the worker runs; a process that dies with it
        frees it within EXPORT_LEASE_SECONDS. (Within a process the use case queues.)"""
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        while not await leases.try_acquire(
            self.engine, EXPORT_LEASE, holder, datetime.now(UTC), EXPORT_LEASE_SECONDS
        ):
            await asyncio.sleep(1.0)

        async def renew() -> None:
            while True:
                await asyncio.sleep(EXPORT_LEASE_SECONDS / 3)
                await leases.try_acquire(
                    self.engine, EXPORT_LEASE, holder, datetime.now(UTC), EXPORT_LEASE_SECONDS
                )

        renewing = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            await leases.release(self.engine, EXPORT_LEASE, holder)

    async def run(self, job: bytes) -> dict[str, Any]:
        """Run the worker on a job (``job()``, as JSON); its summary: what the workbook
        holds, ``seconds``, ``cpu_s``, ``peak_rss_mb``, ``file_bytes``."""
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            WORKER_MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(job), self.timeout)
        except BaseException:  # a timeout, or the bot stopping: the worker goes too
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        if process.returncode != 0:
            said = err.decode("utf-8", "replace").strip().splitlines()[-20:]
            log.error("export worker failed (exit %s):\n%s", process.returncode, "\n".join(said))
            raise ExportFailed(f"exit {process.returncode}")
        summary: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        log.info(
            "workbook made: %s contestants, %s attempts in %.1f s (worker peak RSS %.0f MB)",
            summary["contestants"],
            summary["attempts"],
            summary["seconds"],
            summary["peak_rss_mb"],
        )
        return summary
