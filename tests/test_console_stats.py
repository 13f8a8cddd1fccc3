"""/thongke and /bxh end to end through the fake Bot API, on both engines: the per-unit
table against a hand-computed fixture (a unit exactly at 30%, one just under, one without a
leader), paging by buttons, a focal person's own unit with the colleague lists, refusals of
focal persons outside their unit and of contestants (audited), and the leaderboard's ties;
the leaderboard's SQL ranking against contest.scoring.rank."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.importing import validate_questions, validate_units
from contest.model import Account, Group, Position
from contest.participation import UnitCounts, UnitParticipation, evaluate
from contest.ports import Standing
from contest.registration import normalize_phone
from contest.rules import ContestRules, QuotaRules
from contest.scoring import TieBreak, TieRule, rank
from contest.services import ContestService
from contest.ui.console import stats as screens
from contest.ui.markup import plain
from contest.usecases.results import Placed
from contest.usecases.stats import Overview
from fakes.telegram import FakeBotApi, FakeMessage
from storage import models as m
from storage.files import read_table
from storage.presses import RECOUNT_ALL
from storage.uow import SqlUnitOfWorkFactory
from tests.conftest import SAMPLES, BotRunner, has, pg_engine, say
from tests.test_console_staff import ADMIN, audit_rows

# Hand-computed fixture (quota: 1 leader and 30% of staff, needed participants rounded up):
#   T-DU30  staff 10, needs 3: 3 take part with 1 leader -> 30%, met; one more registered
#           (no attempt) -> registered 4; best results 20, 15, 10 of 20 -> average 15,0/20.
#   T-SAT   staff 7, needs 3 (2.1 rounded up): 2 take part with 1 leader -> 28,5% (28.57%),
#           not met, "cần thêm 1 người"; a third participant is locked, so not counted.
#   T-NOLD  staff 5 (a ward), needs 2: 2 take part, no leader -> 40%, "thiếu 1 lãnh đạo";
#           a citizen living in the ward takes part too, and does not count for the unit.
UNITS = [
    ("T-DU30", "Phòng Thử Nghiệm Đủ Chỉ Tiêu", "phong_ban", "10"),
    ("T-SAT", "Phòng Sát Nút", "phong_ban", "7"),
    ("T-NOLD", "UBND phường Không Lãnh Đạo", "phuong", "5"),
]


@pytest.fixture
async def stats_bot(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    engine: AsyncEngine,
    database_url: str,
) -> AsyncIterator[BotRunner]:
    """The bot over a database with the sample bank and the three units above only."""
    service = ContestService(SqlUnitOfWorkFactory(engine), clock, rules)
    header, rows = read_table(SAMPLES / "questions.csv")
    await service.console.import_questions(validate_questions(header, rows))
    await service.console.import_units(
        validate_units(
            ["code", "name", "kind", "staff_count"],
            [dict(zip(["code", "name", "kind", "staff_count"], u, strict=True)) for u in UNITS],
        )
    )
    runner = BotRunner(
        fake_api, rules, clock, lambda: pg_engine(database_url), admin_ids=str(ADMIN)
    )
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


# ------------------------------------------------------------------ seeding helpers


async def add_person(
    service: ContestService,
    n: int,
    name: str,
    *,
    unit_code: str | None = None,
    ward_code: str | None = None,
    leader: bool = False,
) -> Account:
    """A registered person (telegram id 80000 + n, phone 09400000nn)."""
    account = Account.telegram(80_000 + n)
    async with service.uow() as uow:
        unit = await uow.units.by_code(unit_code) if unit_code else None
        ward = await uow.units.by_code(ward_code) if ward_code else None
        await uow.persons.add(
            account=account,
            full_name=name,
            birth_date=date(1990, 1, 1),
            phone=normalize_phone(phone_of(n)),
            group=Group.CITIZEN if ward else Group.CIVIL_SERVANT,
            unit_id=unit.id if unit else None,
            position=None if ward else (Position.LEADER if leader else Position.STAFF),
            ward_id=ward.id if ward else None,
            consent_at=service.clock.now(),
            registered_at=service.clock.now(),
        )
        await uow.commit()
    return account


def phone_of(n: int) -> str:
    return f"09400{n:05d}"


async def take_exam(
    service: ContestService,
    clock: ManualClock,
    account: Account,
    correct: int,
    seconds: float = 60.0,
    *,
    finish: bool = True,
) -> int:
    """One attempt: the first ``correct`` questions answered right, the others wrong, the
    last answer ``seconds`` after the start (unless ``finish`` is False: left open with
    one question to go). Returns the attempt id."""
    async with service.uow(write=False) as uow:
        bank = {q.text: q for q in await uow.questions.catalog(include_inactive=True)}
    card = await service.exams.start_attempt(account)
    attempt_id = card.attempt_id
    for position in range(card.total):
        question = bank[card.text]
        right = card.options.index(question.options[question.answer])
        choice = right if position < correct else (right + 1) % 3
        if position == card.total - 1:
            if not finish:
                return attempt_id
            clock.advance(seconds=seconds)
        outcome = await service.exams.answer(account, attempt_id, position, choice)
        if outcome.next_card is not None:
            card = outcome.next_card
    return attempt_id


async def lock_directly(engine_url: str, account: Account) -> None:
    """Lock a person in the database itself (the /khoa command has its own tests)."""
    engine = pg_engine(engine_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(m.PersonRow)
                .where(
                    m.PersonRow.id.in_(
                        text("SELECT person_id FROM accounts WHERE external_id = :uid").bindparams(
                            uid=account.user_id
                        )
                    )
                )
                .values(locked_at=datetime.now(UTC), lock_reason="Trùng tài khoản")
            )
    finally:
        await engine.dispose()


async def seed_fixture(bot: BotRunner, clock: ManualClock, database_url: str) -> dict[str, int]:
    service = bot.service
    people = {}
    plan = [
        # (n, name, unit, leader, correct)
        (1, "Lê Văn Một", "T-DU30", True, 20),
        (2, "Lê Văn Hai", "T-DU30", False, 15),
        (3, "Lê Văn Ba", "T-DU30", False, 10),
        (5, "Phạm Thị Năm", "T-SAT", True, 12),
        (6, "Phạm Thị Sáu", "T-SAT", False, 8),
        (7, "Phạm Thị Bảy", "T-SAT", False, 18),  # locked below
        (8, "Đỗ Văn Tám", "T-NOLD", False, 14),
        (9, "Đỗ Văn Chín", "T-NOLD", False, 16),
    ]
    for n, name, unit, leader, correct in plan:
        account = await add_person(service, n, name, unit_code=unit, leader=leader)
        await take_exam(service, clock, account, correct)
        people[name] = n
    await add_person(service, 4, "Lê Thị Bốn", unit_code="T-DU30")  # registered, no attempt
    citizen = await add_person(service, 10, "Vũ Công Dân", ward_code="T-NOLD")
    await take_exam(service, clock, citizen, 11)
    await lock_directly(database_url, Account.telegram(80_007))
    return people


def block_of(message: FakeMessage, name: str) -> str:
    """The three lines of a unit in the table."""
    lines = message.text.splitlines()
    for i, line in enumerate(lines):
        if name in line and line[:1].isdigit():
            return "\n".join(lines[i : i + 3])
    raise AssertionError(f"{name!r} not in:\n{message.text}")


# ------------------------------------------------------------------ the table


async def test_the_per_unit_table_matches_the_hand_computed_fixture(
    stats_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock, database_url: str
):
    await seed_fixture(stats_bot, clock, database_url)
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    page = await say(admin, "/thongke", "THỐNG KÊ THAM GIA VÒNG 1")
    body = page.text
    # Totals: 9 registered (the locked person left out): 8 civil servants and 1 citizen;
    # 8 took part (7 civil servants, the citizen); 9 finished attempts in all (the locked
    # person's counted: it was made).
    assert "Đã đăng ký: 9 người — cán bộ, công chức, viên chức: 8 · công dân: 1" in body
    assert "Đã thi ít nhất 1 lần: 8 người (88,8% số đã đăng ký)" in body
    assert "cán bộ, công chức, viên chức: 7 · công dân: 1" in body
    assert "Bài thi đã nộp: 9 · đang làm bài: 0" in body
    assert "UBND phường: 2/2" in body
    assert "Phòng, ban chuyên môn, đơn vị sự nghiệp: 5/6" in body
    assert "Khối Giáo dục: 0/0" in body
    assert "Tất cả đơn vị: 1/3 đơn vị đạt chỉ tiêu (≥ 1 lãnh đạo và ≥ 30% biên chế)" in body

    under = block_of(page, "Phòng Sát Nút")
    assert under.startswith("1. Phòng Sát Nút — ✗ cần thêm 1 người")
    assert "Biên chế 7 · đăng ký 2 · đã thi 2 (28,5%) · lãnh đạo đã thi 1 · chỉ tiêu 3" in under
    assert "tỉ lệ tham gia 28,5% · có lãnh đạo tham gia · điểm bình quân 10,0/20" in under

    leaderless = block_of(page, "UBND phường Không Lãnh Đạo")
    assert leaderless.startswith("2. UBND phường Không Lãnh Đạo — ✗ thiếu 1 lãnh đạo\n")
    assert "Biên chế 5 · đăng ký 2 · đã thi 2 (40%) · lãnh đạo đã thi 0 · chỉ tiêu 2" in (
        leaderless
    )
    assert "chưa có lãnh đạo tham gia · điểm bình quân 15,0/20" in leaderless

    met = block_of(page, "Phòng Thử Nghiệm Đủ Chỉ Tiêu")
    assert met.startswith("3. Phòng Thử Nghiệm Đủ Chỉ Tiêu — ✓ Đạt")
    assert "Biên chế 10 · đăng ký 4 · đã thi 3 (30%) · lãnh đạo đã thi 1 · chỉ tiêu 3" in met
    assert "tỉ lệ tham gia 30% · có lãnh đạo tham gia · điểm bình quân 15,0/20" in met

    # An organiser opens one unit by its code: its colleague lists.
    unit = await say(admin, "/thongke t-du30", "THAM GIA VÒNG 1 — Phòng Thử Nghiệm")
    assert "Đã đăng ký, chưa thi (1)" in unit.text and "1. Lê Thị Bốn" in unit.text
    assert "Còn 6 người trong biên chế chưa đăng ký" in unit.text
    rows = await audit_rows(stats_bot)
    assert [(r.action, r.outcome) for r in rows] == [("thongke", "ok"), ("unit", "ok")]


async def test_the_table_pages_with_buttons_and_jumps_to_a_kind_of_unit(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    seeded: AsyncEngine,
    database_url: str,
):
    """45 sample units, 8 a page: 6 pages; the 21 wards: 3 pages. Presses edit the one
    message; every page stays under Telegram's 4,096 characters."""
    bot = BotRunner(fake_api, rules, clock, lambda: pg_engine(database_url), admin_ids=str(ADMIN))
    await bot.start()
    try:
        admin = fake_api.user(ADMIN, first_name="Trưởng ban")
        first = await say(admin, "/thongke", "trang 1/6")
        assert "1. " in first.text and "8. " in first.text and "\n9. " not in first.text
        await admin.press("Trang sau ▶️", message_id=first.message_id)
        second = await admin.wait_for(has("trang 2/6"))
        assert second.message_id == first.message_id  # edited in place
        assert "\n9. " in second.text and "Đã đăng ký:" not in second.text  # totals: page 1
        await admin.press("🏘 Phường", message_id=first.message_id)
        wards = await admin.wait_for(has("trang 1/3"))
        assert wards.message_id == first.message_id
        assert "UBND phường: 0/21 đơn vị đạt chỉ tiêu" in wards.text
        names = [line for line in wards.text.splitlines() if line[:1].isdigit()]
        assert len(names) == 8 and all("UBND phường" in line for line in names)
        await admin.press("Trang sau ▶️", message_id=first.message_id)
        await admin.wait_for(has("trang 2/3"))
        await admin.press("Trang sau ▶️", message_id=first.message_id)
        last = await admin.wait_for(has("trang 3/3"))
        assert "21. UBND phường" in last.text
        await admin.press("📋 Tất cả đơn vị", message_id=first.message_id)
        await admin.wait_for(has("trang 1/6"))
        for message in (first, second, wards, last):
            assert len(message.text) < 4096
    finally:
        await bot.stop()


def test_a_page_of_long_unit_names_stays_under_a_message():
    """Unit names may be 200 characters long: a page of 8 still fits in 4,096."""
    from contest.model import Unit, UnitKind
    from contest.participation import Totals

    quota = QuotaRules()
    rows: list[UnitParticipation] = [
        evaluate(
            UnitCounts(Unit(i, f"U{i}", "Ư" * 200, UnitKind.EDUCATION, 99_999), 99_999, 1, 0, 0.5),
            quota,
        )
        for i in range(8)
    ]
    totals = Totals(100_000, 66_666, 33_334, 100_000, 200_000, 5_000, {})
    view = Overview(totals, rows, 0, 250, None, 2_000, 0, 0, datetime(2024, 8, 5, tzinfo=UTC))
    assert len(plain(screens.overview_text(view, quota, 20, 1))) < 4096


def test_two_ranks_never_show_the_same_time():
    def row(rank: int, seconds: float, correct: int = 18, tied: bool = False) -> Placed:
        when = datetime(2024, 8, 5, tzinfo=UTC)
        standing = Standing(rank, rank, rank, "A", None, False, correct, 20, seconds, when)
        return Placed(standing, tied)

    rows = [
        row(1, 61.53),
        row(2, 61.48),  # '01:01,5' too at one decimal: both get hundredths
        row(3, 120.0, tied=True),
        row(3, 120.0, tied=True),  # tied: the same time, as it should
        row(5, 120.04, correct=17),  # fewer correct: no need to tell the time apart
    ]
    assert screens.page_times(rows) == ["01:01,53", "01:01,48", "02:00,0", "02:00,0", "02:00,0"]
    assert screens.fmt_time(75.3) == "01:15,3" and screens.fmt_time(1200) == "20:00,0"


def test_rates_are_never_rounded_up_to_the_quota():
    assert screens.pct(6, 20) == "30%"
    assert screens.pct(2, 7) == "28,5%"  # 28.57%
    assert screens.pct(2999, 10000) == "29,9%"  # never "30,0%"
    assert screens.pct(1, 0) == "–"
    assert screens.num(1200) == "1.200"


# ------------------------------------------------------------------ focal persons


async def test_a_focal_person_sees_their_unit_only_with_the_colleague_lists(
    stats_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock, database_url: str
):
    await seed_fixture(stats_bot, clock, database_url)
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    focal = fake_api.user(80_002, first_name="Đầu mối")  # Lê Văn Hai, of T-DU30
    await say(admin, f"/daumoi T-DU30 {phone_of(2)}", "Đã giao làm đầu mối")

    async with stats_bot.service.uow(write=False) as uow:
        own = await uow.units.by_code("T-DU30")
    assert own is not None
    message = await say(focal, "/thongke", "THAM GIA VÒNG 1 — Phòng Thử Nghiệm Đủ Chỉ Tiêu")
    assert "đã thi: 3 (30%)" in message.text and "✓ Đạt" in message.text
    assert "Đã đăng ký, chưa thi (1)" in message.text and "1. Lê Thị Bốn" in message.text
    assert "Phòng Sát Nút" not in message.text and "Không Lãnh Đạo" not in message.text
    assert "Bảng các đơn vị" not in str(message.buttons)
    await focal.press("✅ Đã thi (3)", message_id=message.message_id)
    took = await focal.wait_for(has("1. Lê Văn Ba"))
    assert took.message_id == message.message_id
    assert "1. Lê Văn Ba (1 lần thi)" in took.text
    assert "2. Lê Văn Hai (1 lần thi)" in took.text
    assert "3. Lê Văn Một (lãnh đạo, 1 lần thi)" in took.text

    # Another unit, by a forged button or by its code: refused, audited, nothing shown.
    async with stats_bot.service.uow(write=False) as uow:
        other = await uow.units.by_code("T-SAT")
    assert other is not None
    query = await focal.press_data(f"a:unit:{other.id}:w:0", message.message_id)
    answer = await focal.wait_callback_answer(query)
    assert answer.text is not None and "chỉ xem được" in answer.text
    refused = await focal.wait_for(has("chỉ xem được"))
    assert "Phạm Thị" not in refused.text
    await say(focal, "/thongke T-SAT", "chỉ xem được tình hình tham gia của đơn vị mình")
    query = await focal.press_data("a:stats:all:0", message.message_id)
    await focal.wait_for(has("chỉ dành cho Ban Tổ chức"))  # the pressed message, edited
    await say(focal, "/bxh", "chỉ dành cho Ban Tổ chức")
    await say(focal, "/khoa 0940000003 thử", "chỉ dành cho Ban Tổ chức")

    rows = await audit_rows(stats_bot)
    mine = [(r.action, r.outcome, r.target) for r in rows if r.actor == "telegram:80002"]
    assert mine == [
        ("unit", "ok", "/thongke"),
        ("unit", "ok", f"a:unit:{own.id}:t:0"),
        ("unit", "refused", f"a:unit:{other.id}:w:0"),
        ("unit", "refused", "/thongke T-SAT"),
        ("stats", "refused", "a:stats:all:0"),
        ("bxh", "refused", "/bxh"),
        ("khoa", "refused", "/khoa"),
    ]


async def test_a_contestant_is_refused_the_statistics_and_it_is_audited(
    stats_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock, database_url: str
):
    await add_person(stats_bot.service, 1, "Lê Văn Một", unit_code="T-DU30")
    user = fake_api.user(80_001, first_name="Một")
    refusal = await say(user, "/thongke", "chỉ dành cho Ban Tổ chức và đầu mối")
    await say(user, "/bxh", "chỉ dành cho Ban Tổ chức")
    await say(user, "/khoa 0940000001 trùng", "chỉ dành cho Ban Tổ chức")
    await say(user, "/mokhoa 0940000001", "chỉ dành cho Ban Tổ chức")
    for data in ("a:stats:all:1", "a:unit:1:w:0", "a:bxh:1:0"):
        query = await user.press_data(data, refusal.message_id)
        await user.wait_callback_answer(query)
    rows = await audit_rows(stats_bot)
    assert [(r.actor, r.action, r.outcome) for r in rows] == [
        ("telegram:80001", name, "refused")
        for name in ("thongke", "bxh", "khoa", "mokhoa", "stats", "unit", "bxh")
    ]
    async with stats_bot.service.uow(write=False) as uow:
        person = await uow.persons.by_account(Account.telegram(80_001))
    assert person is not None and person.locked_at is None


# ------------------------------------------------------------------ the leaderboard


async def test_the_leaderboard_shows_ties_as_equal_ranks_and_pages(
    stats_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    service = stats_bot.service
    plan = [  # name, correct, seconds
        ("Nguyễn Nhất", 20, 60),
        ("Trần Đồng Hai", 18, 120),
        ("Lý Đồng Hai", 18, 120),  # same correct and time: shares rank 2
        ("Hồ Thứ Tư", 18, 150),
        ("Mai Thứ Năm", 10, 100),
    ]
    for n, (name, correct, seconds) in enumerate(plan, start=1):
        account = await add_person(service, n, name, unit_code="T-DU30")
        await take_exam(service, clock, account, correct, seconds)
    # 12 more, to need a second page (15 a page).
    for n in range(6, 18):
        account = await add_person(service, n, f"Thí Sinh Số {n}", ward_code="T-NOLD")
        await take_exam(service, clock, account, 5, 300)
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    board = await say(admin, "/bxh", "BẢNG XẾP HẠNG VÒNG 1")
    lines = board.text.splitlines()
    assert "17 thí sinh · trang 1/2" in board.text
    assert lines[4] == "1. Nguyễn Nhất — Phòng Thử Nghiệm Đủ Chỉ Tiêu: 20/20 câu, 01:00,0"
    ties = {lines[5], lines[6]}
    assert ties == {
        "2= Trần Đồng Hai — Phòng Thử Nghiệm Đủ Chỉ Tiêu: 18/20 câu, 02:00,0",
        "2= Lý Đồng Hai — Phòng Thử Nghiệm Đủ Chỉ Tiêu: 18/20 câu, 02:00,0",
    }
    assert lines[7].startswith("4. Hồ Thứ Tư") and lines[8].startswith("5. Mai Thứ Năm")
    # Twelve contestants tied at rank 6 across both pages, citizens shown by their ward.
    assert lines[9] == "6= Thí Sinh Số 6 — phường Không Lãnh Đạo: 5/20 câu, 05:00,0"
    await admin.press("Trang sau ▶️", message_id=board.message_id)
    second = await admin.wait_for(has("trang 2/2"))
    assert second.message_id == board.message_id
    assert all(line.startswith("6= ") for line in second.text.splitlines()[4:])
    assert len(second.text.splitlines()[4:]) == 2
    await admin.press("Vòng 2", message_id=board.message_id)
    await admin.wait_for(has("Chưa có kết quả vòng 2"))


async def test_the_sql_ranking_is_contest_scoring_rank(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock
):
    """Every page of the leaderboard, read page by page (pages past the middle are read
    from the end), gives the ranks and the order contest.scoring.rank gives, locked
    persons left out of both; many ties of correct answers and of time."""
    uows = SqlUnitOfWorkFactory(seeded)
    service = ContestService(uows, clock, rules)
    rng = random.Random(11)
    start = datetime(2024, 8, 2, 1, 0, tzinfo=UTC)
    persons, attempts = [], []
    for i in range(1, 98):
        persons.append(
            {
                "id": i,
                "full_name": f"Người {i}",
                "birth_date": date(1990, 1, 1),
                "phone": f"+8490{i:07d}",
                "group": "citizen",
                "ward_id": 1,
                "consent_at": start,
                "registered_at": start,
                "reminders_off": False,
                "locked_at": start if i % 13 == 0 else None,
            }
        )
        for number in (1, 2):
            duration = float(rng.choice([60, 61.5, 90, 120]))
            finished = start + timedelta(minutes=rng.randrange(5_000))
            attempts.append(
                {
                    "person_id": i,
                    "round": 1,
                    "number": number,
                    "question_count": 20,
                    "status": "submitted",
                    "started_at": finished - timedelta(seconds=duration),
                    "deadline_at": finished + timedelta(minutes=20),
                    "finished_at": finished,
                    "correct_count": rng.choice([14, 15, 16]),
                    "duration_seconds": duration,
                    "warned": 0,
                }
            )
    async with seeded.begin() as conn:
        await conn.execute(insert(m.PersonRow), persons)
        await conn.execute(insert(m.AttemptRow), attempts)
        await conn.execute(text(RECOUNT_ALL))
    async with uows(write=False) as uow:
        expected = [(r.rank, r.result.person_id) for r in rank(await uow.attempts.best_results(1))]
    assert len(expected) == 97 - 7  # 7 locked persons left out
    got = []
    first = await service.results.leaderboard(1, 0, size=10)
    for page in range(first.pages):
        board = await service.results.leaderboard(1, page, size=10)
        got += [(p.standing.rank, p.standing.person_id) for p in board.rows]
        for placed in board.rows:  # tied: the rank is shared by another person
            shared = sum(1 for r, _ in expected if r == placed.standing.rank) > 1
            assert placed.tied == shared
    assert got == expected
    assert first.total == 90 and first.pages == 9
    # Another tie rule in force ranks in memory with contest.scoring.rank; the same order
    # here (time only, but not the default rule object), names and ties alike.
    other = TieRule((TieBreak.TIME,), official=5)
    for page in (0, 4, 8):
        in_sql = await service.results.leaderboard(1, page, size=10)
        in_memory = await service.results.leaderboard(1, page, size=10, rule=other)
        assert in_memory == in_sql


async def test_locked_persons_are_left_out_of_round_two(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock, database_url: str
):
    """best_results leaves locked persons out: the ranking and the round-2 qualifiers
    (an attempt finished after the lock does not count either)."""
    uows = SqlUnitOfWorkFactory(seeded)
    service = ContestService(uows, clock, rules)
    first = await add_person(service, 1, "Người Thứ Nhất", ward_code="P-CATLINH")
    second = await add_person(service, 2, "Người Thứ Hai", ward_code="P-CATLINH")
    await take_exam(service, clock, first, 20)
    open_attempt = await take_exam(service, clock, second, 19, finish=False)
    await lock_directly(database_url, second)
    outcome = await service.exams.answer(second, open_attempt, 19, 0)  # let it finish
    assert outcome.summary is not None
    ranking = await service.results.ranking()
    assert [r.result.person_id for r in ranking] == [
        (await person_id(service, first)),
    ]
    qualified = await service.results.round2_qualifiers()
    assert len(qualified.qualified) == 1


async def person_id(service: ContestService, account: Account) -> int:
    async with service.uow(write=False) as uow:
        person = await uow.persons.by_account(account)
    assert person is not None
    return person.id


async def test_the_measurement_script_runs(tmp_path):
    """``python -m bench.console_stats`` end to end on a small seed (no timing asserted)."""
    from bench import console_stats

    figures = await console_stats.measure_fresh(tmp_path / "bench.db", 300)
    for key in ("thongke_median_s", "thongke_focal_median_s", "bxh_median_s"):
        assert figures[key] > 0
    assert figures["ranked"] == 300
    assert figures["thongke_focal_chars"] > 0  # the focal person's view was measured too
