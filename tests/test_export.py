"""The organisers' workbook (/xuat, contest-bot export): its sheets read back with openpyxl
on both engines (headers, a ranking with ties, local times, text that looks like a formula,
the item analysis of a hand-computed fixture, the units' participation), the rows rendered
as XlsxWriter itself writes cells, the worker process, one export at a time, and /xuat end
to end through the fake Bot API while a contestant keeps answering."""

from __future__ import annotations

import asyncio
import random
import re
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlsxwriter
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.errors import ContestError
from contest.model import Account, Group, Position, Role
from contest.ports import ExportedWorkbook, ExportRequest
from contest.rules import ContestRules, QuotaRules, to_local
from contest.services import ContestService
from contest.usecases.staff import Actor
from fakes.telegram import FakeBotApi, FakeMessage
from storage import models as m
from storage.export import (
    ATTEMPT_COLUMNS,
    ATTEMPTS,
    AUDIT,
    CONTESTANT_COLUMNS,
    CONTESTANTS,
    FEEDBACK,
    INT,
    ITEM_COLUMNS,
    ITEMS,
    LOCKED,
    NO_RESULT,
    NUMBER,
    RANKED,
    SHEETS,
    TEXT,
    TIME,
    UNIT_COLUMNS,
    UNITS,
    Column,
    ExportFailed,
    ItemStats,
    SheetWriter,
    WorkerExporter,
    _Styles,
    review_notes,
    write_workbook,
)
from storage.uow import SqlUnitOfWorkFactory
from tests.conftest import BotRunner, has, pg_engine, register_civil_servant, say
from tests.test_console_staff import audit_rows

ADMIN, DEPUTY = 9001, 9002
NOW = datetime(2024, 8, 5, 2, 0, tzinfo=UTC)  # 09:00 in Hà Nội
HOSTILE = [
    '=HYPERLINK("http://evil.example/x","x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
]


def request_at(when: datetime = NOW) -> ExportRequest:
    return ExportRequest(1, QuotaRules(), when)


async def workbook_of(engine: AsyncEngine, tmp_path: Path, when: datetime = NOW) -> Any:
    path = tmp_path / "du-lieu.xlsx"
    await write_workbook(engine, request_at(when), path, batch_size=3)  # several batches
    return openpyxl.load_workbook(path)


def rows_of(book: Any, title: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in book[title].iter_rows(values_only=True)]


def headers(columns: tuple[Column, ...]) -> tuple[str, ...]:
    return tuple(c.header for c in columns)


def local(when: datetime) -> datetime:
    """What a cell shows for a stored time (to the millisecond, as SQLite computes it)."""
    return to_local(when).replace(tzinfo=None)


def near(cell: Any, when: datetime) -> bool:
    return isinstance(cell, datetime) and abs(cell - local(when)) < timedelta(milliseconds=2)


async def unit_id(engine: AsyncEngine, code: str) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(select(m.UnitRow.id).where(m.UnitRow.code == code))
        return int(found.scalar_one())


class Contest:
    """Registers people and plays attempts through the real use cases."""

    def __init__(self, engine: AsyncEngine, rules: ContestRules, clock: ManualClock) -> None:
        self.engine = engine
        self.uow = SqlUnitOfWorkFactory(engine)
        self.clock = clock
        self.service = ContestService(self.uow, clock, rules, rng=random.Random(7))

    async def register(
        self,
        telegram_id: int,
        name: str,
        phone: str,
        *,
        unit: int | None = None,
        ward: int | None = None,
        leader: bool = False,
    ) -> int:
        async with self.uow() as uow:
            person = await uow.persons.add(
                account=Account.telegram(telegram_id),
                full_name=name,
                birth_date=date(1990, 1, 1),
                phone=phone,
                group=Group.CIVIL_SERVANT if unit else Group.CITIZEN,
                unit_id=unit,
                position=(Position.LEADER if leader else Position.STAFF) if unit else None,
                ward_id=ward,
                consent_at=self.clock.now(),
                registered_at=self.clock.now(),
            )
            await uow.commit()
        return person.id

    async def attempt(
        self, telegram_id: int, correct: int, seconds: float, *, answered: int = 20
    ) -> int:
        """Start an attempt, answer ``answered`` questions (the first ``correct`` right),
        the last ``seconds`` after the start; returns the attempt id."""
        account = Account.telegram(telegram_id)
        card = await self.service.exams.start_attempt(account)
        step = seconds / answered
        for position in range(answered):
            self.clock.advance(seconds=step)
            async with self.uow(write=False) as uow:
                attempt = await uow.attempts.get(card.attempt_id)
                assert attempt is not None
                item = attempt.items[position]
                key = await uow.questions.answer_of(item.question_id)
            assert key is not None
            shown = item.order.index(key)  # where the key is shown on the card
            choice = shown if position < correct else (shown + 1) % 3
            await self.service.exams.answer(account, card.attempt_id, position, choice)
        return card.attempt_id

    async def lock(self, person_id: int, reason: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(m.PersonRow)
                .where(m.PersonRow.id == person_id)
                .values(locked_at=self.clock.now(), lock_reason=reason)
            )

    async def finished_at(self, attempt_id: int) -> datetime:
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(m.AttemptRow.finished_at).where(m.AttemptRow.id == attempt_id)
            )
            value = found.scalar_one()
        assert isinstance(value, datetime)
        return value


# ------------------------------------------------------------------ the contestants' sheet


async def test_contestants_ranked_with_ties_then_the_others_with_local_times(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock, tmp_path: Path
):
    contest = Contest(seeded, rules, clock)
    cat_linh = await unit_id(seeded, "P-CATLINH")
    kim_lien = await unit_id(seeded, "P-KIMLIEN")
    an = await contest.register(1, "Nguyễn Văn An", "0910000001", unit=cat_linh, leader=True)
    await contest.register(2, "Trần Thị Bình", "0910000002", ward=kim_lien)
    await contest.register(3, "Lê Văn Cường", "0910000003", unit=cat_linh)
    await contest.register(4, "Phạm Thị Dung", "0910000004", ward=kim_lien)
    em = await contest.register(5, "Hoàng Văn Em", "0910000005", ward=kim_lien)
    giang = await contest.register(6, "Vũ Thị Giang", "0910000006", ward=kim_lien)
    await contest.register(7, "Đỗ Văn Hùng", "0910000007", ward=kim_lien)  # never starts

    await contest.attempt(1, correct=15, seconds=600)
    an_best = await contest.attempt(1, correct=18, seconds=720)
    await contest.attempt(2, correct=18, seconds=720)  # ties with An's best, but later
    await contest.attempt(3, correct=18, seconds=660)  # same score, faster: first
    await contest.attempt(4, correct=10, seconds=300)
    await contest.attempt(5, correct=3, seconds=60, answered=3)  # still in progress
    await contest.attempt(6, correct=19, seconds=100)  # the best, but locked
    await contest.lock(giang, "Tài khoản trùng với thí sinh khác")

    book = await workbook_of(seeded, tmp_path)
    assert book.sheetnames == list(SHEETS)
    rows = rows_of(book, CONTESTANTS)
    assert rows[0] == headers(CONTESTANT_COLUMNS)
    assert rows[0][:3] == ("Hạng", "Mã thí sinh", "Họ và tên")
    body = rows[1:]
    assert [(r[0], r[2], r[6], r[8]) for r in body] == [
        (1, "Lê Văn Cường", 18, 660),
        (2, "Nguyễn Văn An", 18, 720),  # a tie: the same rank, the earlier submission first
        (2, "Trần Thị Bình", 18, 720),
        (4, "Phạm Thị Dung", 10, 300),
        (None, "Hoàng Văn Em", None, None),  # registered, nothing finished
        (None, "Đỗ Văn Hùng", None, None),
        (None, "Vũ Thị Giang", 19, 100),  # locked: shown, never ranked
    ]
    first = body[1]
    assert first[1] == an and first[3] == "Cán bộ, công chức, viên chức"
    assert first[4] == "UBND phường Cát Linh" and first[5] == "Lãnh đạo đơn vị"
    assert (first[7], first[9]) == (20, 2)  # of 20 questions, his second attempt counts
    assert near(first[10], await contest.finished_at(an_best))  # Vietnam's time
    assert first[11] == "0910000001"
    assert near(first[12], NOW) and first[12].hour == 9  # registered at 09:00 local
    assert [r[13] for r in body] == [RANKED] * 4 + [NO_RESULT] * 2 + [LOCKED]
    binh = body[2]
    assert binh[3] == "Công dân" and binh[4] == "UBND phường Kim Liên" and binh[5] is None
    em_row = body[4]
    assert em_row[1] == em and em_row[6:11] == (None,) * 5
    locked = body[6]
    assert near(locked[14], NOW + timedelta(seconds=100 + 600 + 720 + 720 + 660 + 300 + 60))
    assert locked[15] == "Tài khoản trùng với thí sinh khác"
    # A frozen header row with filter buttons, and widths that fit the longest text.
    sheet = book[CONTESTANTS]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:Q8"  # up to «Dự đoán»
    name_width = sheet.column_dimensions["C"].width
    assert name_width >= len("Nguyễn Văn An") and name_width <= 45


async def test_every_attempt_with_the_counting_ones_marked(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock, tmp_path: Path
):
    contest = Contest(seeded, rules, clock)
    ward = await unit_id(seeded, "P-KIMLIEN")
    an = await contest.register(1, "Nguyễn Văn An", "0910000001", ward=ward)
    binh = await contest.register(2, "Trần Thị Bình", "0910000002", ward=ward)
    first = await contest.attempt(1, correct=12, seconds=600)
    await contest.attempt(1, correct=14, seconds=500)
    # Bình's first attempt runs out of time; her second is still open.
    binh_first = await contest.attempt(2, correct=5, seconds=100, answered=5)
    clock.advance(minutes=21)
    assert await contest.service.exams.close_if_expired(binh_first)
    await contest.service.exams.start_attempt(Account.telegram(2))
    rows = rows_of(await workbook_of(seeded, tmp_path), ATTEMPTS)
    assert rows[0] == headers(ATTEMPT_COLUMNS)
    assert rows[0][2:] == (
        "Vòng",
        "Lần thi",
        "Trạng thái",
        "Số câu đúng",
        "Thời gian làm bài (giây)",
        "Bắt đầu lúc (giờ Việt Nam)",
        "Kết thúc lúc (giờ Việt Nam)",
        "Được tính",
    )
    body = rows[1:]
    assert [(r[0], r[3], r[4], r[5], r[9]) for r in body] == [
        (an, 1, "Đã nộp bài", 12, None),
        (an, 2, "Đã nộp bài", 14, "Có"),
        (binh, 1, "Hết giờ", 5, "Có"),  # closed by the deadline
        (binh, 2, "Đang làm bài", None, None),
    ]
    done = body[0]
    assert done[1] == "Nguyễn Văn An" and done[2] == 1 and done[6] == 600
    assert done[8] - done[7] == timedelta(seconds=600)
    assert near(done[8], await contest.finished_at(first))
    assert body[2][6] == 1200  # the whole 20 minutes
    assert body[3][8] is None  # not finished


# ------------------------------------------------------------------ text is text


async def test_text_that_looks_like_a_formula_stays_text_in_every_sheet(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock, tmp_path: Path
):
    """Names such as ``=HYPERLINK(...)`` (registration refuses them; an old row, an import
    or another channel may not), a feedback text shaped like XlsxWriter's rich text, and
    an audit entry: strings in the file, never formulas or markup."""
    contest = Contest(seeded, rules, clock)
    ward = await unit_id(seeded, "P-KIMLIEN")
    people = []
    for index, name in enumerate(HOSTILE, start=1):
        people.append(await contest.register(index, name, f"091000000{index}", ward=ward))
        await contest.attempt(index, correct=index, seconds=60 * index)
    rich = "<r><t>chữ đậm</t></r>"
    async with seeded.begin() as conn:
        await conn.execute(
            insert(m.FeedbackRow),
            [
                {"person_id": people[0], "text": HOSTILE[0], "created_at": NOW, "status": "open"},
                {"person_id": people[1], "text": rich, "created_at": NOW, "status": "answered"},
            ],
        )
        await conn.execute(
            insert(m.AuditRow).values(
                at=NOW, actor="telegram:1", actor_name=HOSTILE[3], action="xuat", outcome="ok"
            )
        )
    path = tmp_path / "du-lieu.xlsx"
    await write_workbook(seeded, request_at(), path)
    book = openpyxl.load_workbook(path)
    for title, column in ((CONTESTANTS, 3), (ATTEMPTS, 2), (FEEDBACK, 4)):
        cells = [row[column - 1] for row in book[title].iter_rows(min_row=2)]
        assert {c.value for c in cells} <= set(HOSTILE) and cells
        assert all(c.data_type == "s" for c in cells), [(c.value, c.data_type) for c in cells]
    feedback = [row[10] for row in book[FEEDBACK].iter_rows(min_row=2)]
    assert [c.value for c in feedback] == [HOSTILE[0], rich]
    assert all(c.data_type == "s" for c in feedback)
    assert [row[2].value for row in book[AUDIT].iter_rows(min_row=2)] == [HOSTILE[3]]
    for sheet in book.worksheets:
        assert not any(c.data_type == "f" for row in sheet.iter_rows() for c in row)
    with zipfile.ZipFile(path) as package:
        sheets = [package.read(n) for n in package.namelist() if n.startswith("xl/worksheets/")]
    assert not any(b"<f>" in xml for xml in sheets)


def test_rows_are_rendered_as_xlsxwriter_writes_them(tmp_path: Path):
    """The same rows through XlsxWriter's own write_number / write_string (constant_memory)
    and through SheetWriter: the same cells, byte for byte (escapes of control characters,
    of a literal _xHHHH_, white space kept, XML specials, formulas as text)."""
    columns = (
        Column("Số", INT, 5),
        Column("Chữ", TEXT, 5),
        Column("Số thực", NUMBER, 5),
        Column("Thời điểm", TIME, 5),
    )
    texts = [
        "Nguyễn Văn An",
        *HOSTILE,
        "a & b < c > d",
        " khoảng trắng ở đầu",
        "ở cuối\t",
        "điều khiển \x01\x1f giữa",
        "_x0041_ trông như mã thoát",
        "xuống\ndòng",
        "\ufffe",
        "x" * 40_000,  # over Excel's 32,767: both cut it
    ]
    rows = [(i, text, i / 7, 45_000 + i / 3) for i, text in enumerate(texts)]

    theirs_path = tmp_path / "xlsxwriter.xlsx"
    book = xlsxwriter.Workbook(str(theirs_path), {"constant_memory": True})
    styles = _Styles(book)
    sheet = book.add_worksheet("x")
    time_format = book.add_format({"num_format": "dd/mm/yyyy hh:mm:ss"})
    assert time_format._get_xf_index() == styles.indices[TIME]
    for r, (number, text, real, when) in enumerate(rows, start=1):
        sheet.write_number(r, 0, number)
        sheet.write_string(r, 1, text)
        sheet.write_number(r, 2, real)
        sheet.write_number(r, 3, when, time_format)
    book.close()

    ours_path = tmp_path / "ours.xlsx"
    book = xlsxwriter.Workbook(str(ours_path), {"constant_memory": True})
    out = SheetWriter(book, _Styles(book), "x", columns, batch_size=4)
    for row in rows:
        out.add(row)
    out.flush()
    book.close()

    def data_rows(path: Path) -> list[str]:
        with zipfile.ZipFile(path) as package:
            xml = package.read("xl/worksheets/sheet1.xml").decode()
        return re.findall(r'<row r="(?:[2-9]|\d\d+)".*?</row>', xml, flags=re.DOTALL)

    theirs, ours = data_rows(theirs_path), data_rows(ours_path)
    assert len(ours) == len(texts)
    assert ours == theirs
    values = [row[1] for row in rows_of(openpyxl.load_workbook(ours_path), "x")[1:]]
    assert values[: len(HOSTILE) + 1] == ["Nguyễn Văn An", *HOSTILE]


def test_a_text_shaped_like_rich_text_is_escaped_not_copied(tmp_path: Path):
    """XlsxWriter's write_string copies a text like ``<r>…</r>`` into the file as rich-text
    XML in constant_memory mode; the rendered rows escape it, labels included."""
    path = tmp_path / "rich.xlsx"
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    columns = (Column("Chữ", TEXT, 5), Column("Nhãn", "label", 5))
    out = SheetWriter(book, _Styles(book), "x", columns)
    out.add(("<r><t>a</t></r>", "<r>b</r>"))
    out.add(("thường", "nhãn"))
    out.close()
    book.close()
    assert rows_of(openpyxl.load_workbook(path), "x")[1:] == [
        ("<r><t>a</t></r>", "<r>b</r>"),
        ("thường", "nhãn"),
    ]


# ------------------------------------------------------------------ item analysis

# Eight contestants, five questions. Each counting attempt draws four of them; ✓ right,
# ✗ wrong, - not answered (the deadline closed the attempt). Ranked by correct answers,
# then time: P1 4, P2 3 (100 s), P3 3 (200 s), P4 2 (100 s), P5 2 (150 s), P6 1 (100 s),
# P7 1 (200 s), P8 0. Groups: 27% of 8 is 2.16 -> the upper 2 (P1, P2), the lower 2
# (P7, P8). The persons are inserted out of rank order, so that only the ranking decides.
#
#          q1   q2   q3   q4   q5
#   P1     ✓    ✓    ✓    ✓
#   P2     ✓    ✓    ✓         ✗
#   P3     ✓    ✗         ✓    ✓
#   P4     ✓         ✗    ✓    ✗
#   P5          ✓    ✓    ✗    ✗
#   P6     ✓    ✗    ✗    ✗
#   P7     ✗    ✗    ✗         ✓
#   P8     ✗    ✗         ✗    -
#
# q1: drawn 7, right 5 (5/7); upper 2/2, lower 0/2: D = 1.
# q2: drawn 7, right 3 (3/7); upper 2/2, lower 0/2: D = 1.
# q3: drawn 6, right 3 (1/2); upper 2/2, lower 0/1: D = 1.
# q4: drawn 6, right 3 (1/2); upper 1/1 (P1), lower 0/1 (P8): D = 1.
# q5: drawn 6, answered 5, right 2 (1/3); upper 0/1 (P2), lower 1/2 (P7 ✓, P8 -):
#     D = -0.5, flagged.
# A locked contestant (all right) and P1's other, non-counting attempt (all wrong) change
# nothing.
PLAN = {
    "P1": (100, {"q1": True, "q2": True, "q3": True, "q4": True}),
    "P2": (100, {"q1": True, "q2": True, "q3": True, "q5": False}),
    "P3": (200, {"q1": True, "q2": False, "q4": True, "q5": True}),
    "P4": (100, {"q1": True, "q3": False, "q4": True, "q5": False}),
    "P5": (150, {"q2": True, "q3": True, "q4": False, "q5": False}),
    "P6": (100, {"q1": True, "q2": False, "q3": False, "q4": False}),
    "P7": (200, {"q1": False, "q2": False, "q3": False, "q5": True}),
    "P8": (100, {"q1": False, "q2": False, "q4": False, "q5": None}),
}
INSERT_ORDER = ["P5", "P8", "P2", "P7", "P1", "P4", "P6", "P3"]


async def seed_item_fixture(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        bank = (
            await conn.execute(
                select(m.QuestionRow.id, m.QuestionRow.answer).order_by(m.QuestionRow.id)
            )
        ).all()
    questions = {f"q{n}": bank[n - 1] for n in range(1, 6)}
    ids = {name: row.id for name, row in questions.items()}
    ids["voided"] = bank[5].id
    people = [(name, *PLAN[name]) for name in INSERT_ORDER]
    people.append(("locked", 50, {"q1": True, "q2": True, "q3": True, "q5": True}))
    async with engine.begin() as conn:
        for number, (name, seconds, items) in enumerate(people, start=1):
            person = await conn.execute(
                insert(m.PersonRow)
                .values(
                    full_name=f"Thí sinh {name}",
                    birth_date=date(1990, 1, 1),
                    phone=f"09400000{number:02d}",
                    group="citizen",
                    consent_at=NOW,
                    registered_at=NOW,
                    locked_at=NOW if name == "locked" else None,
                    lock_reason="trùng" if name == "locked" else None,
                )
                .returning(m.PersonRow.id)
            )
            person_id = person.scalar_one()
            attempts = [(1, True, items)]
            if name == "P1":  # another, worse attempt that does not count
                attempts.append((2, False, {q: False for q in items}))
            for attempt_number, counting, marks in attempts:
                finished = NOW + timedelta(seconds=seconds + number)
                attempt = await conn.execute(
                    insert(m.AttemptRow)
                    .values(
                        person_id=person_id,
                        round=1,
                        number=attempt_number,
                        question_count=len(marks),
                        status="submitted" if None not in marks.values() else "expired",
                        started_at=NOW,
                        deadline_at=NOW + timedelta(minutes=20),
                        finished_at=finished,
                        correct_count=sum(1 for v in marks.values() if v),
                        duration_seconds=float(seconds),
                        counting=counting,
                    )
                    .returning(m.AttemptRow.id)
                )
                attempt_id = attempt.scalar_one()
                rows = []
                for position, (q, right) in enumerate(marks.items()):
                    key = questions[q].answer
                    # Options shown in the bank's order except the first item: reversed.
                    order = "210" if position == 0 else "012"
                    shown = order.index(str(key if right else (key + 1) % 3))
                    rows.append(
                        {
                            "attempt_id": attempt_id,
                            "position": position,
                            "question_id": questions[q].id,
                            "option_order": order,
                            "choice": None if right is None else shown,
                            "correct": right,
                        }
                    )
                await conn.execute(insert(m.AttemptItemRow), rows)
        await conn.execute(
            update(m.QuestionRow).where(m.QuestionRow.id == ids["voided"]).values(voided_at=NOW)
        )
    return ids


async def test_item_analysis_of_a_hand_computed_fixture(seeded: AsyncEngine, tmp_path: Path):
    ids = await seed_item_fixture(seeded)
    book = await workbook_of(seeded, tmp_path)
    rows = rows_of(book, ITEMS)
    assert rows[0] == headers(ITEM_COLUMNS)
    by_id = {r[0]: r for r in rows[1:]}
    expected = {  # drawn, answered, right, facility, upper, lower, D
        "q1": (7, 7, 5, 5 / 7, 1.0, 0.0, 1.0),
        "q2": (7, 7, 3, 3 / 7, 1.0, 0.0, 1.0),
        "q3": (6, 6, 3, 0.5, 1.0, 0.0, 1.0),
        "q4": (6, 6, 3, 0.5, 1.0, 0.0, 1.0),
        "q5": (6, 5, 2, 1 / 3, 0.0, 0.5, -0.5),
    }
    for q, figures in expected.items():
        row = by_id[ids[q]]
        assert row[8:11] == figures[:3], q
        assert row[11:15] == pytest.approx(figures[3:]), q
        assert row[7] == "Đang dùng"
    q5 = by_id[ids["q5"]]
    assert q5[18].startswith("D âm") and q5[18].count(";") == 0
    assert rows[1][0] == ids["q5"]  # the question to look at comes first
    assert by_id[ids["q1"]][18] is None  # D = 1 and 71% right: nothing to say
    # The options chosen, as the bank orders them: q1's key 5 times in 7 answers.
    q1 = by_id[ids["q1"]]
    key = "abc".index(q1[6])
    assert q1[15 + key] == pytest.approx(5 / 7)
    assert q1[15 + (key + 1) % 3] == pytest.approx(2 / 7)
    voided = by_id[ids["voided"]]
    assert voided[7].startswith("Đã hủy") and voided[8] == 0 and voided[18] is None
    assert len(rows) - 1 == len(by_id)  # every question of the bank in use, once


def test_review_notes_thresholds():
    def stats(drawn: int, correct: int, upper: tuple[int, int], lower: tuple[int, int]) -> Any:
        return ItemStats(1, drawn, drawn, correct, *upper, *lower, (0, 0, 0), 10)

    assert review_notes(stats(100, 60, (10, 8), (10, 5)), False) == ""  # D 0.3
    assert review_notes(stats(100, 60, (10, 7), (10, 6)), False) == ("Độ phân biệt thấp (D < 0,2)")
    assert review_notes(stats(100, 10, (10, 5), (10, 1)), False) == (
        "Quá khó (dưới 20% trả lời đúng)"
    )
    assert review_notes(stats(100, 97, (10, 10), (10, 9)), False) == (
        "Độ phân biệt thấp (D < 0,2); quá dễ (trên 95% trả lời đúng)"
    )
    assert review_notes(stats(100, 50, (10, 2), (10, 6)), False).startswith("D âm")
    assert review_notes(stats(100, 97, (10, 10), (10, 9)), True) == ""  # voided
    assert review_notes(None, False) == ""  # never drawn


# ------------------------------------------------------------------ participation

PARTICIPATION_UNITS = [
    # code, name, kind, staff; participants (leaders among them), registered only
    ("T-DU30", "Phòng Thử Nghiệm Đủ Chỉ Tiêu", "phong_ban", 10, 3, 1, 1),  # 30%: met
    ("T-SAT", "Phòng Sát Nút", "phong_ban", 7, 2, 1, 0),  # needs 3 (2.1): not met
    ("T-NOLD", "UBND phường Không Lãnh Đạo", "phuong", 5, 2, 0, 0),  # 40%, no leader
]


async def test_the_participation_sheet_is_the_consoles_table(
    engine: AsyncEngine, rules: ContestRules, clock: ManualClock, tmp_path: Path
):
    async with engine.begin() as conn:
        for code, name, kind, staff, *_ in PARTICIPATION_UNITS:
            await conn.execute(
                insert(m.UnitRow).values(
                    code=code,
                    name=name,
                    kind=kind,
                    staff_count=staff,
                    name_key=name.lower(),
                    updated_at=NOW,
                )
            )
    n = 0
    for code, _, _, _, takers, leaders, idle in PARTICIPATION_UNITS:
        unit = await unit_id(engine, code)
        async with engine.begin() as conn:
            for k in range(takers + idle):
                n += 1
                person = await conn.execute(
                    insert(m.PersonRow)
                    .values(
                        full_name=f"Người {n}",
                        birth_date=date(1990, 1, 1),
                        phone=f"09500000{n:02d}",
                        group="civil_servant",
                        unit_id=unit,
                        position="leader" if k < leaders else "staff",
                        consent_at=NOW,
                        registered_at=NOW,
                    )
                    .returning(m.PersonRow.id)
                )
                if k >= takers:
                    continue
                await conn.execute(
                    insert(m.AttemptRow).values(
                        person_id=person.scalar_one(),
                        round=1,
                        number=1,
                        question_count=20,
                        status="submitted",
                        started_at=NOW,
                        deadline_at=NOW + timedelta(minutes=20),
                        finished_at=NOW + timedelta(minutes=5),
                        correct_count=10 + 5 * k,
                        duration_seconds=300.0,
                        counting=True,
                    )
                )
    rows = rows_of(await workbook_of(engine, tmp_path), UNITS)
    assert rows[0] == headers(UNIT_COLUMNS)
    by_code = {r[0]: r for r in rows[1:]}
    assert by_code["T-DU30"] == (
        "T-DU30",
        "Phòng Thử Nghiệm Đủ Chỉ Tiêu",
        "Phòng, ban chuyên môn, đơn vị sự nghiệp",
        10,
        4,  # registered
        3,  # took part
        1,  # leaders
        pytest.approx(0.3),
        3,  # needed
        0,  # missing
        "✓",
        "✓",
        "✓",
        pytest.approx((10 + 15 + 20) / 3 / 20),
    )
    assert by_code["T-SAT"][7:13] == (pytest.approx(2 / 7), 3, 1, "✓", "✗", "✗")
    assert by_code["T-NOLD"][6:13] == (0, pytest.approx(0.4), 2, 0, "✗", "✓", "✗")
    # The same units, in the same order, as the console's table.
    service = ContestService(SqlUnitOfWorkFactory(engine), clock, rules)
    table = await service.stats.participation()
    assert [r[0] for r in rows[1:]] == [r.unit.code for r in table]


# ------------------------------------------------------------------ the worker process


async def test_the_worker_process_makes_the_same_workbook(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock
):
    """What /xuat runs: a worker process on its own engine (on PostgreSQL, in the same
    schema as the bot's), the file's bytes back."""
    contest = Contest(seeded, rules, clock)
    ward = await unit_id(seeded, "P-KIMLIEN")
    await contest.register(1, "Nguyễn Văn An", "0910000001", ward=ward)
    await contest.attempt(1, correct=17, seconds=400)
    made = await WorkerExporter(seeded).workbook(request_at())
    assert (made.contestants, made.ranked, made.attempts) == (1, 1, 1)
    assert made.questions >= 20 and made.seconds > 0
    book = openpyxl.load_workbook(BytesIO(made.data))
    assert rows_of(book, CONTESTANTS)[1][:3] == (1, 1, "Nguyễn Văn An")


async def test_a_failing_worker_is_reported_not_hung(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
):
    """A table gone missing: the worker fails and says why on its standard error; the bot
    logs it and raises (the console then says the file was not made)."""
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE attempt_items")
    with pytest.raises(ExportFailed):
        await WorkerExporter(engine).workbook(request_at())
    assert "export worker failed (exit 1)" in caplog.text
    assert "attempt_items" in caplog.text
    assert not list(Path(tempfile.gettempdir()).glob("contest-export-*.xlsx"))  # removed


# ------------------------------------------------------------------ one at a time


class RecordingExporter:
    """An Exporter that takes a while and records how many run at once."""

    def __init__(self, fail: bool = False) -> None:
        self.running = 0
        self.most = 0
        self.fail = fail
        self.release = asyncio.Event()

    async def workbook(self, request: ExportRequest) -> ExportedWorkbook:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
            if self.fail:
                raise RuntimeError("worker died")
            return ExportedWorkbook(b"PK", 3, 2, 4, 86, 0.5)
        finally:
            self.running -= 1


async def test_one_workbook_at_a_time_each_audited(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock
):
    service = ContestService(SqlUnitOfWorkFactory(seeded), clock, rules)
    exporter = RecordingExporter()
    service.exports.exporter = exporter
    first = Actor(Account.telegram(ADMIN), Role.ORGANISER, name="Trưởng ban")
    second = Actor(Account.telegram(DEPUTY), Role.ORGANISER, name="Phó ban")
    assert not service.exports.busy
    one = asyncio.create_task(service.exports.workbook(first))
    await asyncio.sleep(0.01)
    assert service.exports.busy  # the second organiser is told to wait
    two = asyncio.create_task(service.exports.workbook(second))
    await asyncio.sleep(0.05)
    assert exporter.running == 1
    exporter.release.set()
    assert (await one).ranked == 2 and (await two).ranked == 2
    assert exporter.most == 1 and not service.exports.busy
    async with seeded.connect() as conn:
        audit = (
            await conn.execute(select(m.AuditRow.actor, m.AuditRow.action, m.AuditRow.outcome))
        ).all()
    assert [tuple(r) for r in audit] == [
        ("telegram:9001", "xuat", "ok"),
        ("telegram:9002", "xuat", "ok"),
    ]

    failing = RecordingExporter(fail=True)
    failing.release.set()
    service.exports.exporter = failing
    with pytest.raises(ContestError) as caught:
        await service.exports.workbook(first)
    assert caught.value.code == "export_failed"
    async with seeded.connect() as conn:
        outcomes = (await conn.execute(select(m.AuditRow.outcome))).scalars().all()
    assert outcomes[-1] == "failed"


async def test_one_workbook_at_a_time_across_processes(seeded: AsyncEngine):
    """Bots in several processes (two exporters here, each its own lease holder): the
    second worker starts when the first is done."""
    first, second = WorkerExporter(seeded), WorkerExporter(seeded)
    entered = asyncio.Event()

    async def later() -> None:
        async with second.turn():
            entered.set()

    async with first.turn():
        waiting = asyncio.create_task(later())
        await asyncio.sleep(1.5)
        assert not entered.is_set()
    await asyncio.wait_for(entered.wait(), 5)
    await waiting


# ------------------------------------------------------------------ /xuat end to end


@pytest.fixture
async def export_bot(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    seeded: AsyncEngine,
    database_url: str,
) -> AsyncIterator[BotRunner]:
    runner = BotRunner(
        fake_api, rules, clock, lambda: pg_engine(database_url), admin_ids=f"{ADMIN},{DEPUTY}"
    )
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


def is_document(message: FakeMessage) -> bool:
    return message.document is not None


async def seed_crowd(engine: AsyncEngine, rules: ContestRules, count: int) -> None:
    """``count`` more contestants with two finished attempts each and their items (the
    benchmark's seeders): enough for the workbook to take a while."""
    from bench.console_export import seed_items
    from bench.suite import seed_bank, seed_people, seed_results

    rng = random.Random(3)
    bank = await seed_bank(engine, rules)
    people = await seed_people(engine, bank, count, 8_000_000, rng)
    await seed_results(engine, people, rng)
    await seed_items(engine, bank, rng)


async def watch_loop(stalls: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        planned = loop.time() + 0.01
        await asyncio.sleep(0.01)
        stalls.append(loop.time() - planned)


async def test_an_organiser_gets_the_workbook_while_contestants_keep_answering(
    export_bot: BotRunner, fake_api: FakeBotApi, rules: ContestRules
):
    """The bot runs in this test's event loop: while the workbook is made, the loop never
    stalls and a contestant's press is answered at once."""
    from bot.app import runtime

    await seed_crowd(runtime(export_bot.app).engine, rules, 4_000)
    contestant = fake_api.user(9101, first_name="Thí sinh")
    await register_civil_servant(contestant, name="Nguyễn Văn An", phone="0930000001")
    intro = await say(contestant, "/thi", "Bắt đầu")
    await contestant.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    card = await contestant.wait_for(has("Câu 1/20"))

    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    menus = [c["command"] for key, cs in fake_api.commands.items() if str(ADMIN) in key for c in cs]
    assert "xuat" in menus
    stalls: list[float] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_loop(stalls, stop))
    making = await say(admin, "/xuat", "Đang tạo tệp")
    assert not is_document(making)
    pressed = time.monotonic()
    query = await contestant.press("A", message_id=card.message_id)
    answer = await contestant.wait_callback_answer(query)
    answered_in = answer.answered_at - pressed
    still_making = not [m for m in admin.bot_messages() if is_document(m)]
    await contestant.wait_for(has("Câu 2/20"))
    document = await admin.wait_for(is_document, timeout=120)
    stop.set()
    await watcher
    assert still_making  # the press was answered while the workbook was being made
    assert answered_in < 1.0, answered_in
    assert max(stalls) < 0.25, max(stalls)

    assert document.document is not None
    assert document.document.file_name.startswith("du-lieu-cuoc-thi-")
    assert document.document.file_name.endswith(".xlsx")
    assert "4.001 thí sinh" in document.text and "số điện thoại" in document.text
    book = openpyxl.load_workbook(BytesIO(document.document.data), read_only=True)
    assert book.sheetnames == list(SHEETS)
    an = [r for r in book[CONTESTANTS].iter_rows(values_only=True) if r[2] == "Nguyễn Văn An"]
    assert len(an) == 1 and an[0][13] == NO_RESULT
    audit = [(r.actor, r.action, r.outcome) for r in await audit_rows(export_bot)]
    assert (f"telegram:{ADMIN}", "xuat", "ok") in audit


async def test_a_second_organiser_waits_for_the_first_workbook(
    export_bot: BotRunner, fake_api: FakeBotApi
):
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    deputy = fake_api.user(DEPUTY, first_name="Phó ban")
    await admin.send_text("/xuat")
    await admin.wait_for(has("Đang tạo tệp"))
    queued = await say(deputy, "/xuat", "Đang tạo tệp")
    assert "Một thành viên Ban Tổ chức khác đang xuất dữ liệu" in queued.text
    first = await admin.wait_for(is_document, timeout=60)
    second = await deputy.wait_for(is_document, timeout=60)
    assert first.document is not None and second.document is not None
    audit = [(r.actor, r.action, r.outcome) for r in await audit_rows(export_bot)]
    assert audit.count((f"telegram:{ADMIN}", "xuat", "ok")) == 1
    assert audit.count((f"telegram:{DEPUTY}", "xuat", "ok")) == 1


async def test_a_contestants_xuat_is_refused_and_audited(
    export_bot: BotRunner, fake_api: FakeBotApi
):
    user = fake_api.user(9102, first_name="Khách")
    await register_civil_servant(user, phone="0930000002")
    await say(user, "/xuat", "chỉ dành cho Ban Tổ chức")
    await asyncio.sleep(0.3)
    assert not [m for m in user.bot_messages() if is_document(m)]
    assert not any("Đang tạo tệp" in m.text for m in user.bot_messages())
    audit = [(r.actor, r.action, r.outcome) for r in await audit_rows(export_bot)]
    assert audit == [("telegram:9102", "xuat", "refused")]
