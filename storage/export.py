"""XLSX export of a round's results for the organisers.

The workbook has two sheets, written with openpyxl in write-only mode (rows are streamed to
disk, not kept in memory):

* «Xếp hạng vòng N»: one row per person, the attempt that counts, in the order of
  :func:`contest.scoring.rank` (most correct, then shorter time, then earlier submission;
  equal scores share a rank);
* «Các lần thi»: every finished attempt, with the one that counts marked.

Only the ranking itself (the best attempt of each person) is held in memory; person details
are fetched in batches in rank order, and the attempts sheet is streamed from one query. All
reads happen in one read-only transaction, so both sheets show the same moment (on SQLite a
deferred ``BEGIN``, which never blocks the bot's writers; on PostgreSQL ``REPEATABLE READ``).

The file carries phone numbers: it is meant for the organisers only (the phone column is the
last one of each sheet, so it can be dropped before anything is published).

Cost: openpyxl spends about 10 µs of CPU per cell, so 100,000 people with 2 attempts each
(300,000 rows) take some 35-40 s of CPU and ~110 MB of memory (``contest-bot bench --only
export``). The coroutine yields between batches, but a bot answering contestants should still
run it in another process.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contest.model import AttemptResult, AttemptStatus, Group, Position
from contest.rules import to_local
from contest.scoring import Ranked, rank, result_key
from storage import models as m

__all__ = [
    "ATTEMPTS_SHEET",
    "ATTEMPT_HEADERS",
    "RANKING_HEADERS",
    "export_round_results",
    "ranking_sheet_title",
]

ATTEMPTS_SHEET = "Các lần thi"
RANKING_HEADERS = (
    "Hạng",
    "Họ và tên",
    "Đối tượng",
    "Đơn vị / Phường",
    "Chức vụ",
    "Số câu đúng",
    "Tổng số câu",
    "Thời gian làm bài (giây)",
    "Lần thi được công nhận",
    "Thời điểm nộp bài (giờ Việt Nam)",
    "Số điện thoại",
)
ATTEMPT_HEADERS = (
    "Họ và tên",
    "Lần thi",
    "Trạng thái",
    "Số câu đúng",
    "Tổng số câu",
    "Thời gian làm bài (giây)",
    "Bắt đầu (giờ Việt Nam)",
    "Nộp bài (giờ Việt Nam)",
    "Được công nhận",
    "Số điện thoại",
)
_RANKING_WIDTHS = (7, 30, 26, 40, 34, 12, 12, 16, 14, 22, 15)
_ATTEMPT_WIDTHS = (30, 9, 14, 12, 12, 16, 22, 22, 14, 15)

# The same wording as the bot uses (contest/ui/texts.py).
GROUP_LABELS = {
    Group.CIVIL_SERVANT.value: "Cán bộ, công chức, viên chức",
    Group.CITIZEN.value: "Công dân",
}
POSITION_LABELS = {
    Position.LEADER.value: "Lãnh đạo đơn vị",
    Position.STAFF.value: "Công chức, viên chức, người lao động",
}
STATUS_LABELS = {
    AttemptStatus.SUBMITTED.value: "Đã nộp bài",
    AttemptStatus.EXPIRED.value: "Hết giờ",
}
YES = "Có"

DATETIME_FORMAT = "dd/mm/yyyy hh:mm:ss"
SECONDS_FORMAT = "0.000"
DEFAULT_BATCH_SIZE = 1_000

Target = str | os.PathLike[str] | IO[bytes]
_IN_PROGRESS = AttemptStatus.IN_PROGRESS.value


def ranking_sheet_title(round_number: int) -> str:
    return f"Xếp hạng vòng {round_number}"


async def export_round_results(
    engine: AsyncEngine,
    round_number: int,
    target: Target,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    """Write the results of ``round_number`` as an .xlsx workbook to ``target`` (a path or a
    binary stream) and return the number of ranked rows (people with a finished attempt).

    Attempts still in progress are left out of both sheets.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be a positive integer")
    workbook = Workbook(write_only=True)
    async with engine.connect() as connection:
        conn = await _read_only(connection)
        units = await _unit_names(conn)
        ranked = rank((await _best_results(conn, round_number, batch_size)).values())
        counted = {r.result.attempt_id for r in ranked}

        sheet = _sheet(workbook, ranking_sheet_title(round_number), RANKING_HEADERS)
        _set_widths(sheet, _RANKING_WIDTHS)
        formats = _Formats(sheet)
        for start in range(0, len(ranked), batch_size):
            chunk = ranked[start : start + batch_size]
            people = await _people(conn, [r.result.person_id for r in chunk])
            for entry in chunk:
                sheet.append(_ranking_row(entry, people[entry.result.person_id], units, formats))
            await asyncio.sleep(0)  # a long export must not starve the bot's other work

        sheet = _sheet(workbook, ATTEMPTS_SHEET, ATTEMPT_HEADERS)
        _set_widths(sheet, _ATTEMPT_WIDTHS)
        formats = _Formats(sheet)
        stream = await conn.stream(
            select(
                m.PersonRow.full_name,
                m.PersonRow.phone,
                m.AttemptRow.id,
                m.AttemptRow.number,
                m.AttemptRow.status,
                m.AttemptRow.correct_count,
                m.AttemptRow.question_count,
                m.AttemptRow.duration_seconds,
                m.AttemptRow.started_at,
                m.AttemptRow.finished_at,
            )
            .join(m.PersonRow, m.PersonRow.id == m.AttemptRow.person_id)
            .where(m.AttemptRow.round == round_number, m.AttemptRow.status != _IN_PROGRESS)
            .order_by(m.AttemptRow.person_id, m.AttemptRow.number, m.AttemptRow.id)
            .execution_options(yield_per=batch_size)
        )
        async for rows in stream.partitions(batch_size):
            for row in rows:
                sheet.append(_attempt_row(row, counted, formats))
            await asyncio.sleep(0)  # a long export must not starve the bot's other work
    # Zipping the sheets is the slow part of saving; zlib releases the GIL.
    await asyncio.to_thread(workbook.save, target)
    return len(ranked)


# ------------------------------------------------------------------------------ reading


async def _read_only(connection: AsyncConnection) -> AsyncConnection:
    """One read transaction for the whole export: a deferred BEGIN on SQLite (see
    storage.db), a snapshot on PostgreSQL."""
    if connection.dialect.name == "postgresql":
        return await connection.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
    return await connection.execution_options(contest_write=False)


async def _unit_names(conn: AsyncConnection) -> dict[int, str]:
    rows = await conn.execute(select(m.UnitRow.id, m.UnitRow.name))
    return {row.id: row.name for row in rows}


async def _best_results(
    conn: AsyncConnection, round_number: int, batch_size: int
) -> dict[int, AttemptResult]:
    """The counting attempt of every person, reduced while streaming (only one result per
    person is ever held)."""
    best: dict[int, AttemptResult] = {}
    stream = await conn.stream(
        select(
            m.AttemptRow.id,
            m.AttemptRow.person_id,
            m.AttemptRow.number,
            m.AttemptRow.correct_count,
            m.AttemptRow.question_count,
            m.AttemptRow.duration_seconds,
            m.AttemptRow.finished_at,
            m.AttemptRow.status,
        )
        .where(m.AttemptRow.round == round_number, m.AttemptRow.status != _IN_PROGRESS)
        .execution_options(yield_per=batch_size)
    )
    async for rows in stream.partitions(batch_size):
        for row in rows:
            result = AttemptResult(
                row.id,
                row.person_id,
                round_number,
                row.number,
                row.correct_count,
                row.question_count,
                row.duration_seconds or 0.0,
                row.finished_at,
                AttemptStatus(row.status),
            )
            current = best.get(result.person_id)
            if current is None or result_key(result) < result_key(current):
                best[result.person_id] = result
    return best


async def _people(conn: AsyncConnection, person_ids: Sequence[int]) -> dict[int, Any]:
    rows = await conn.execute(
        select(
            m.PersonRow.id,
            m.PersonRow.full_name,
            m.PersonRow.phone,
            m.PersonRow.group,
            m.PersonRow.position,
            m.PersonRow.unit_id,
            m.PersonRow.ward_id,
        ).where(m.PersonRow.id.in_(person_ids))
    )
    return {row.id: row for row in rows}


# ------------------------------------------------------------------------------ writing


class _Formats:
    """Number-formatted cells, one per column, reused row after row: openpyxl writes a row
    out as soon as it is appended, and styling a fresh cell per row is the costly part."""

    def __init__(self, sheet: WriteOnlyWorksheet) -> None:
        self.sheet = sheet
        self._cells: dict[str, WriteOnlyCell] = {}

    def _cell(self, column: str, number_format: str, value: Any) -> WriteOnlyCell:
        cell = self._cells.get(column)
        if cell is None:
            cell = self._cells[column] = WriteOnlyCell(self.sheet)
            cell.number_format = number_format
        cell.value = value
        return cell

    def when(self, column: str, value: datetime | None) -> WriteOnlyCell | None:
        if value is None:
            return None
        return self._cell(column, DATETIME_FORMAT, to_local(value).replace(tzinfo=None))

    def seconds(self, column: str, value: float | None) -> WriteOnlyCell:
        return self._cell(column, SECONDS_FORMAT, round(value or 0.0, 3))


def _sheet(workbook: Workbook, title: str, headers: Iterable[str]) -> WriteOnlyWorksheet:
    sheet = workbook.create_sheet(title)
    assert isinstance(sheet, WriteOnlyWorksheet)
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="center")
    header_cells = []
    for text in headers:
        cell = WriteOnlyCell(sheet, text)
        cell.font = bold
        cell.alignment = wrap
        header_cells.append(cell)
    sheet.append(header_cells)
    return sheet


def _set_widths(sheet: WriteOnlyWorksheet, widths: Sequence[int]) -> None:
    dimensions = sheet.column_dimensions  # set by Worksheet._setup()
    for index, width in enumerate(widths, start=1):
        dimensions[get_column_letter(index)].width = width


# A cell whose text starts with one of these is read as a formula by spreadsheet programs
# (and openpyxl writes a str starting with "=" as one): user text is always written as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(sheet: WriteOnlyWorksheet, value: str | None) -> Any:
    """User-supplied text as a text cell, never a formula (names, unit names, phones)."""
    if value is None or not value.startswith(FORMULA_STARTS):
        return value
    cell = WriteOnlyCell(sheet, value)
    cell.data_type = "s"
    return cell


def _unit_of(person: Any, units: dict[int, str]) -> str:
    unit_id = person.unit_id if person.group == Group.CIVIL_SERVANT.value else person.ward_id
    return units.get(unit_id, "") if unit_id is not None else ""


def _ranking_row(entry: Ranked, person: Any, units: dict[int, str], formats: _Formats) -> list[Any]:
    result = entry.result
    sheet = formats.sheet
    return [
        entry.rank,
        _text(sheet, person.full_name),
        GROUP_LABELS.get(person.group, person.group),
        _text(sheet, _unit_of(person, units)),
        POSITION_LABELS.get(person.position, "") if person.position else "",
        result.correct,
        result.total,
        formats.seconds("duration", result.duration_seconds),
        result.number,
        formats.when("finished", result.finished_at),
        _text(sheet, person.phone),
    ]


def _attempt_row(row: Any, counted: set[int], formats: _Formats) -> list[Any]:
    return [
        _text(formats.sheet, row.full_name),
        row.number,
        STATUS_LABELS.get(row.status, row.status),
        row.correct_count,
        row.question_count,
        formats.seconds("duration", row.duration_seconds),
        formats.when("started", row.started_at),
        formats.when("finished", row.finished_at),
        YES if row.id in counted else "",
        _text(formats.sheet, row.phone),
    ]
