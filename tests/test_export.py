"""The organisers' XLSX export: ranking order, ties, Vietnamese headers, what is left out."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from io import BytesIO
from pathlib import Path

import openpyxl
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.model import Account, AttemptStatus, Group, Position
from contest.rules import ContestRules, to_local
from contest.services import ContestService
from storage import models as m
from storage.export import (
    ATTEMPT_HEADERS,
    ATTEMPTS_SHEET,
    RANKING_HEADERS,
    export_round_results,
    ranking_sheet_title,
)
from storage.uow import SqlUnitOfWorkFactory

RANKING = ranking_sheet_title(1)


async def unit_id(engine: AsyncEngine, code: str) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(select(m.UnitRow.id).where(m.UnitRow.code == code))).scalar_one()
        )


class Contest:
    """Registers people and plays attempts through the real use cases."""

    def __init__(self, engine: AsyncEngine, rules: ContestRules, clock: ManualClock) -> None:
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
    ) -> None:
        async with self.uow() as uow:
            await uow.persons.add(
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

    async def choice(self, attempt_id: int, position: int, right: bool) -> int:
        async with self.uow(write=False) as uow:
            attempt = await uow.attempts.get(attempt_id)
            assert attempt is not None
            item = attempt.items[position]
            question = (await uow.questions.get_many([item.question_id]))[item.question_id]
        label = item.order.index(question.answer)
        return label if right else (label + 1) % 3

    async def attempt(
        self, telegram_id: int, correct: int, seconds: float, *, answered: int = 20
    ) -> int:
        """Start an attempt, answer ``answered`` questions (the first ``correct`` right) and
        reach the last answer ``seconds`` after the start; returns the attempt id."""
        card = await self.service.exams.start_attempt(Account.telegram(telegram_id))
        step = seconds / answered
        for position in range(answered):
            self.clock.advance(seconds=step)
            choice = await self.choice(card.attempt_id, position, position < correct)
            await self.service.exams.answer(
                Account.telegram(telegram_id), card.attempt_id, position, choice
            )
        return card.attempt_id


def sheet_rows(data: bytes, title: str) -> list[tuple[object, ...]]:
    workbook = openpyxl.load_workbook(BytesIO(data))
    return [tuple(row) for row in workbook[title].iter_rows(values_only=True)]


async def test_ranking_ties_headers_and_in_progress_left_out(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock
):
    contest = Contest(seeded, rules, clock)
    cat_linh = await unit_id(seeded, "P-CATLINH")
    kim_lien = await unit_id(seeded, "P-KIMLIEN")
    await contest.register(1, "Nguyễn Văn An", "0910000001", unit=cat_linh, leader=True)
    await contest.register(2, "Trần Thị Bình", "0910000002", ward=kim_lien)
    await contest.register(3, "Lê Văn Cường", "0910000003", unit=cat_linh)
    await contest.register(4, "Phạm Thị Dung", "0910000004", ward=kim_lien)
    await contest.register(5, "Hoàng Văn Em", "0910000005", ward=kim_lien)  # only in progress
    await contest.register(6, "Vũ Thị Giang", "0910000006", ward=kim_lien)  # 1 done, 1 open

    await contest.attempt(1, correct=15, seconds=600)
    an_best = await contest.attempt(1, correct=18, seconds=720)
    await contest.attempt(2, correct=18, seconds=720)  # ties with An's best, but later
    await contest.attempt(3, correct=18, seconds=660)  # same score, faster: first
    await contest.attempt(4, correct=10, seconds=300)
    await contest.attempt(5, correct=3, seconds=60, answered=3)  # still in progress
    # Giang: the deadline closes her first attempt (unanswered questions count as wrong).
    giang = await contest.attempt(6, correct=5, seconds=120, answered=5)
    clock.advance(minutes=21)
    assert await contest.service.exams.close_if_expired(giang)
    await contest.attempt(6, correct=2, seconds=30, answered=2)  # her second: still open

    stream = BytesIO()
    assert await export_round_results(seeded, 1, stream) == 5
    data = stream.getvalue()

    workbook = openpyxl.load_workbook(BytesIO(data))
    assert workbook.sheetnames == ["Xếp hạng vòng 1", "Các lần thi"]
    ranking = sheet_rows(data, RANKING)
    assert ranking[0] == RANKING_HEADERS
    assert ranking[0][:10] == (
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
    )
    assert "Số điện thoại" in ranking[0]
    body = ranking[1:]
    assert [(r[0], r[1], r[5], r[7]) for r in body] == [
        (1, "Lê Văn Cường", 18, 660),
        (2, "Nguyễn Văn An", 18, 720),  # tie: same rank, the earlier submission first
        (2, "Trần Thị Bình", 18, 720),
        (4, "Phạm Thị Dung", 10, 300),
        (5, "Vũ Thị Giang", 5, 1200),  # closed by the deadline: the full 20 minutes
    ]
    assert all(r[6] == 20 for r in body)
    an = body[1]
    assert an[2] == "Cán bộ, công chức, viên chức"
    assert an[3] == "UBND phường Cát Linh"
    assert an[4] == "Lãnh đạo đơn vị"
    assert an[8] == 2  # his second attempt counts
    assert an[10] == "0910000001"
    binh_row = body[2]
    assert binh_row[2] == "Công dân" and binh_row[3] == "UBND phường Kim Liên"
    assert binh_row[4] is None  # citizens have no position
    assert body[2][8] == 1
    # Times are shown in Vietnam time (naive in the sheet, as Excel has no time zones).
    async with seeded.connect() as conn:
        finished = (
            await conn.execute(select(m.AttemptRow.finished_at).where(m.AttemptRow.id == an_best))
        ).scalar_one()
    assert isinstance(an[9], datetime)
    assert an[9] == to_local(finished).replace(tzinfo=None)
    assert "Hoàng Văn Em" not in {r[1] for r in body}

    attempts = sheet_rows(data, ATTEMPTS_SHEET)
    assert attempts[0] == ATTEMPT_HEADERS
    assert attempts[0][:3] == ("Họ và tên", "Lần thi", "Trạng thái")
    rows = attempts[1:]
    # Every finished attempt, none in progress: An 2, Bình, Cường, Dung, Giang's first.
    assert len(rows) == 6
    assert [(r[0], r[1]) for r in rows] == [
        ("Nguyễn Văn An", 1),
        ("Nguyễn Văn An", 2),
        ("Trần Thị Bình", 1),
        ("Lê Văn Cường", 1),
        ("Phạm Thị Dung", 1),
        ("Vũ Thị Giang", 1),
    ]
    counted = {(r[0], r[1]) for r in rows if r[8] == "Có"}
    assert counted == {
        ("Nguyễn Văn An", 2),
        ("Trần Thị Bình", 1),
        ("Lê Văn Cường", 1),
        ("Phạm Thị Dung", 1),
        ("Vũ Thị Giang", 1),
    }
    statuses = {r[0]: r[2] for r in rows}
    assert statuses["Vũ Thị Giang"] == "Hết giờ"
    assert statuses["Lê Văn Cường"] == "Đã nộp bài"
    first = rows[0]
    assert (first[3], first[4], first[5]) == (15, 20, 600)
    assert isinstance(first[6], datetime) and isinstance(first[7], datetime)
    assert first[7] - first[6] == timedelta(seconds=600)


async def test_export_to_a_file_with_small_batches(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock, tmp_path: Path
):
    contest = Contest(seeded, rules, clock)
    ward = await unit_id(seeded, "P-KIMLIEN")
    for n in range(7):
        await contest.register(100 + n, f"Thí sinh {n}", f"09200000{n:02d}", ward=ward)
        await contest.attempt(100 + n, correct=n + 1, seconds=100 + n)
    path = tmp_path / "ket-qua.xlsx"
    assert await export_round_results(seeded, 1, path, batch_size=3) == 7
    rows = sheet_rows(path.read_bytes(), RANKING)[1:]
    assert [r[1] for r in rows] == [f"Thí sinh {n}" for n in reversed(range(7))]
    assert [r[0] for r in rows] == list(range(1, 8))
    assert len(sheet_rows(path.read_bytes(), ATTEMPTS_SHEET)) == 8


async def test_export_without_results_has_only_headers(seeded: AsyncEngine):
    stream = BytesIO()
    assert await export_round_results(seeded, 1, stream) == 0
    assert sheet_rows(stream.getvalue(), RANKING) == [RANKING_HEADERS]
    assert sheet_rows(stream.getvalue(), ATTEMPTS_SHEET) == [ATTEMPT_HEADERS]


def test_statuses_have_vietnamese_labels():
    from storage.export import STATUS_LABELS

    assert set(STATUS_LABELS) == {s.value for s in AttemptStatus if s is not s.IN_PROGRESS}


async def test_user_text_that_looks_like_a_formula_is_written_as_text(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock
):
    """A name such as ``=HYPERLINK(...)`` must reach the file as text, never as a formula
    (the file also holds every phone number)."""
    contest = Contest(seeded, rules, clock)
    kim_lien = await unit_id(seeded, "P-KIMLIEN")
    hostile = [
        '=HYPERLINK("http://evil.example/x","Bấm vào đây")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A2)",
    ]
    for index, name in enumerate(hostile, start=1):
        await contest.register(index, name, f"091000000{index}", ward=kim_lien)
        await contest.attempt(index, correct=index, seconds=60 * index)

    stream = BytesIO()
    assert await export_round_results(seeded, 1, stream) == len(hostile)
    workbook = openpyxl.load_workbook(BytesIO(stream.getvalue()))
    for title, column in ((RANKING, 2), (ATTEMPTS_SHEET, 1)):
        cells = [row[column - 1] for row in workbook[title].iter_rows(min_row=2)]
        assert sorted(c.value for c in cells) == sorted(hostile)
        assert all(c.data_type == "s" for c in cells), [(c.value, c.data_type) for c in cells]
    for sheet in workbook.worksheets:
        assert not any(c.data_type == "f" for row in sheet.iter_rows() for c in row)
