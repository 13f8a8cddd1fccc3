"""/suacau end to end through the fake Bot API: an organiser corrects a key (every answer
re-graded, scores, counting attempts and the ranking recomputed, one message per person
whose result changed), voids a question (correct for everyone who drew it, answered or not,
even answered after the void), corrects the wording (nothing re-graded); stale, repeated and
forged confirmations change nothing; contestants are refused and audited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.importing import QuestionRow, validate_units
from contest.rules import ContestRules
from contest.services import ContestService
from fakes.telegram import FakeBotApi, FakeMessage, FakeUser
from storage import models as m
from storage.files import read_table
from storage.uow import SqlUnitOfWorkFactory
from tests.conftest import SAMPLES, BotRunner, has, pg_engine, press, register_civil_servant, say

ADMIN = 9001
LABELS = "ABC"
CHANGED = "KẾT QUẢ THI CỦA BẠN ĐÃ THAY ĐỔI"


async def seed_bank(engine: AsyncEngine, rules: ContestRules, clock: ManualClock, count: int):
    """``count`` questions in three topics (key = i % 3) and the sample units."""
    service = ContestService(SqlUnitOfWorkFactory(engine), clock, rules)
    await service.console.import_questions(
        [
            QuestionRow(
                f"Chủ đề {i % 3}",
                f"Câu hỏi kiểm tra số {i}: thủ tục số {i} giải quyết trong bao lâu?",
                (f"{i + 1} ngày", f"{i + 2} ngày", f"{i + 3} ngày"),
                i % 3,
            )
            for i in range(count)
        ]
    )
    header, rows = read_table(SAMPLES / "units.csv")
    await service.console.import_units(validate_units(header, rows))


async def running_bot(
    api: FakeBotApi, rules: ContestRules, clock: ManualClock, database_url: str
) -> BotRunner:
    runner = BotRunner(api, rules, clock, lambda: pg_engine(database_url), admin_ids=str(ADMIN))
    await runner.start()
    return runner


@pytest.fixture
async def bank20(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    engine: AsyncEngine,
    database_url: str,
) -> AsyncIterator[BotRunner]:
    """A bank of exactly one attempt's 20 questions: every attempt draws every question."""
    await seed_bank(engine, rules, clock, 20)
    runner = await running_bot(fake_api, rules, clock, database_url)
    try:
        yield runner
    finally:
        await runner.stop()


@pytest.fixture
async def bank21(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    engine: AsyncEngine,
    database_url: str,
) -> AsyncIterator[BotRunner]:
    await seed_bank(engine, rules, clock, 21)
    runner = await running_bot(fake_api, rules, clock, database_url)
    try:
        yield runner
    finally:
        await runner.stop()


def engine_of(bot: BotRunner) -> AsyncEngine:
    from bot.app import runtime

    return runtime(bot.app).engine


async def person_of(bot: BotRunner, uid: int) -> int:
    async with engine_of(bot).connect() as conn:
        return int(
            (
                await conn.execute(
                    select(m.AccountRow.person_id).where(m.AccountRow.external_id == str(uid))
                )
            ).scalar_one()
        )


async def attempts_of(bot: BotRunner, uid: int) -> list[m.AttemptRow]:
    person = await person_of(bot, uid)
    async with engine_of(bot).connect() as conn:
        rows = await conn.execute(
            select(m.AttemptRow).where(m.AttemptRow.person_id == person).order_by(m.AttemptRow.id)
        )
        return list(rows.all())  # type: ignore[arg-type]


async def items_of(bot: BotRunner, attempt_id: int) -> list[tuple[int, str, int]]:
    """(question id, option order, key) of each position."""
    async with engine_of(bot).connect() as conn:
        rows = await conn.execute(
            select(
                m.AttemptItemRow.question_id, m.AttemptItemRow.option_order, m.QuestionRow.answer
            )
            .join(m.QuestionRow, m.QuestionRow.id == m.AttemptItemRow.question_id)
            .where(m.AttemptItemRow.attempt_id == attempt_id)
            .order_by(m.AttemptItemRow.position)
        )
        return [(r.question_id, r.option_order, r.answer) for r in rows]


async def open_exam(user: FakeUser) -> FakeMessage:
    intro = await say(user, "/thi", "Bắt đầu")
    await user.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    return await user.wait_for(has("Câu 1/20"))


Pick = Callable[[int, int], int]  # (question id, key) -> the option (0..2) to choose


def right(question_id: int, key: int) -> int:
    return key


async def answer(
    bot: BotRunner, user: FakeUser, card: FakeMessage, attempt_id: int, pick: Pick, count: int = 20
) -> FakeMessage:
    """Answer the next ``count`` questions; returns the card as it is then."""
    items = await items_of(bot, attempt_id)
    message = card
    for _ in range(count):
        position = int(message.text.split("Câu ")[1].split("/")[0]) - 1
        question_id, order, key = items[position]
        label = LABELS[[int(c) for c in order].index(pick(question_id, key))]
        query = await user.press(label, message_id=card.message_id)
        await user.wait_callback_answer(query)
        message = await user.wait_for(lambda msg: msg.message_id == card.message_id)
    return message


async def take(
    bot: BotRunner, user: FakeUser, clock: ManualClock, minutes: int, pick: Pick = right
) -> FakeMessage:
    card = await open_exam(user)
    attempt_id = (await attempts_of(bot, user.id))[-1].id
    clock.advance(minutes=minutes)
    done = await answer(bot, user, card, attempt_id, pick)
    assert "hoàn thành bài thi" in done.text
    return done


async def audit_rows(bot: BotRunner) -> list[tuple[str, str, str]]:
    async with engine_of(bot).connect() as conn:
        rows = await conn.execute(select(m.AuditRow).order_by(m.AuditRow.id))
        return [(r.actor, r.action, r.outcome) for r in rows]


async def outbox_count(bot: BotRunner, kind: str = "result_changed") -> int:
    async with engine_of(bot).connect() as conn:
        return int(await conn.scalar(select(func.count()).where(m.OutboxRow.kind == kind)) or 0)


def changed_messages(user: FakeUser) -> list[FakeMessage]:
    return [msg for msg in user.bot_messages() if CHANGED in msg.text]


async def registered(api: FakeBotApi, uid: int, phone: str, name: str) -> FakeUser:
    user = api.user(uid, first_name=name)
    await register_civil_servant(user, phone=phone, name=name)
    return user


async def test_a_key_correction_regrades_reranks_and_tells_each_person_once(
    bank20: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    bot = bank20
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    a = await registered(fake_api, 9201, "0931000001", "Nguyễn Văn An")
    b = await registered(fake_api, 9202, "0931000002", "Trần Thị Bình")
    c = await registered(fake_api, 9203, "0931000003", "Lê Văn Cường")
    d = await registered(fake_api, 9204, "0931000004", "Phạm Thị Dung")
    async with engine_of(bot).connect() as conn:
        question_id, old = (
            await conn.execute(
                select(m.QuestionRow.id, m.QuestionRow.answer).order_by(m.QuestionRow.id).limit(1)
            )
        ).one()
    new, third = (old + 1) % 3, (old + 2) % 3

    def with_q(option: int, wrong: int = 0) -> Pick:
        """The question fixed answered with ``option``; ``wrong`` others answered wrong."""
        state = {"wrong": wrong}

        def pick(qid: int, key: int) -> int:
            if qid == question_id:
                return option
            if state["wrong"]:
                state["wrong"] -= 1
                return (key + 1) % 3
            return key

        return pick

    d_card = await open_exam(d)  # in progress across the fix, nothing answered
    await take(bot, a, clock, 6)  # 20/20 (right with the old key)
    await take(bot, a, clock, 4, with_q(new, wrong=2))  # 17/20
    await take(bot, b, clock, 5, with_q(new))  # 19/20
    await take(bot, c, clock, 3, with_q(third))  # 19/20 either way
    before = [r.result.person_id for r in await bot.service.results.ranking()]
    ids = {u: await person_of(bot, u.id) for u in (a, b, c, d)}
    assert before == [ids[a], ids[c], ids[b]]

    # The organiser finds the question by id, sees its key, and chooses a new one.
    shown = await say(admin, f"/suacau {question_id}", f"CÂU HỎI #{question_id}")
    assert f"Đáp án đúng: {LABELS[old]}" in shown.text
    assert "Đã có 5 bài thi của 4 người rút câu này (1 bài đang làm)" in shown.text
    await press(admin, "🔑 Sửa đáp án", "Chọn đáp án đúng mới", message_id=shown.message_id)
    preview = await press(admin, LABELS[new], "SỬA ĐÁP ÁN", message_id=shown.message_id)
    assert f"Đáp án đúng: {LABELS[old]} → {LABELS[new]}" in preview.text
    assert "Ảnh hưởng 5 bài thi của 4 người; 2 người sẽ thay đổi kết quả" in preview.text
    assert "1 bài đang làm được chấm lại" in preview.text
    confirm_data = preview.inline_data["✅ Xác nhận"]
    # Nothing has changed yet.
    assert [r.correct_count for r in await attempts_of(bot, a.id)] == [20, 17]
    assert await outbox_count(bot) == 0

    done = await press(admin, "✅ Xác nhận", "Đã sửa đáp án", message_id=preview.message_id)
    assert "2 người thay đổi kết quả" in done.text

    a_rows, b_rows, c_rows = [await attempts_of(bot, u.id) for u in (a, b, c)]
    assert [(r.correct_count, r.counting) for r in a_rows] == [(19, True), (18, False)]
    assert [(r.correct_count, r.counting) for r in b_rows] == [(20, True)]
    assert [(r.correct_count, r.counting) for r in c_rows] == [(19, True)]
    after = [r.result.person_id for r in await bot.service.results.ranking()]
    assert after == [ids[b], ids[c], ids[a]]

    # One message each to A and B (A had two attempts re-graded), with the new result.
    to_a = await a.wait_for(has(CHANGED))
    assert "Lần thi 1: 19/20" in to_a.text and "Lần thi 2: 18/20" in to_a.text
    assert "Kết quả được công nhận: 19/20 câu đúng" in to_a.text
    assert "Câu hỏi kiểm tra" not in to_a.text  # round 1 is open: no question, no key
    to_b = await b.wait_for(has(CHANGED))
    assert "Kết quả được công nhận: 20/20 câu đúng" in to_b.text
    results = await say(b, "/ketqua", "KẾT QUẢ VÒNG 1")
    assert "Kết quả được công nhận: 20/20 câu đúng" in results.text

    # Pressing the confirmation again (a forged or repeated press) changes nothing.
    query = await admin.press_data(confirm_data, done.message_id)
    refused = await admin.wait_callback_answer(query)
    assert refused.text is not None and "đã được thực hiện" in refused.text
    assert [r.correct_count for r in await attempts_of(bot, a.id)] == [19, 18]

    # D, in progress during the fix, is graded with the new key, and told nothing extra.
    d_attempt = (await attempts_of(bot, d.id))[0].id
    finished = await answer(bot, d, d_card, d_attempt, with_q(new))
    assert "20/20" in finished.text
    final = [r.result.person_id for r in await bot.service.results.ranking()]
    assert final == [ids[b], ids[d], ids[c], ids[a]]

    await say(a, "/ketqua", "KẾT QUẢ")  # give the sender time for anything extra
    assert [len(changed_messages(u)) for u in (a, b, c, d)] == [1, 1, 0, 0]
    assert await outbox_count(bot) == 2

    async with engine_of(bot).connect() as conn:
        fix = (await conn.execute(select(m.QuestionFixRow))).one()
        key_now = await conn.scalar(
            select(m.QuestionRow.answer).where(m.QuestionRow.id == question_id)
        )
    assert (fix.kind, fix.attempts_touched, fix.persons_touched) == ("key", 5, 4)
    assert key_now == new
    audit = await audit_rows(bot)
    assert ("telegram:9001", "fix_question", "ok") in audit
    assert ("telegram:9001", "fix_ok", "failed") in audit  # the repeated press


async def test_void_counts_as_correct_for_everyone_who_drew_it(
    bank21: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    bot = bank21
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    e = await registered(fake_api, 9211, "0931000011", "Nguyễn Văn Em")
    f = await registered(fake_api, 9212, "0931000012", "Trần Văn Phong")
    g = await registered(fake_api, 9213, "0931000013", "Lê Thị Giang")
    cards = {u: await open_exam(u) for u in (e, f, g)}
    attempts = {u: (await attempts_of(bot, u.id))[0].id for u in (e, f, g)}
    drawn = [{qid for qid, _, _ in await items_of(bot, attempts[u])} for u in (e, f, g)]
    question_id = min(set.intersection(*drawn))  # drawn by all three

    def wrong_on_q(qid: int, key: int) -> int:
        return (key + 1) % 3 if qid == question_id else key

    clock.advance(minutes=5)
    await answer(bot, e, cards[e], attempts[e], wrong_on_q)  # 19/20 -> 20/20
    await answer(bot, f, cards[f], attempts[f], right)  # 20/20, unchanged
    # G answers everything except the voided question before the void.
    g_items = await items_of(bot, attempts[g])
    q_position = [qid for qid, _, _ in g_items].index(question_id)
    await answer(bot, g, cards[g], attempts[g], right, count=q_position)

    shown = await say(admin, f"/suacau #{question_id}", f"CÂU HỎI #{question_id}")
    preview = await press(admin, "🚫 Hủy câu hỏi", "HỦY CÂU HỎI", message_id=shown.message_id)
    assert "Ảnh hưởng 3 bài thi của 3 người; 1 người sẽ thay đổi kết quả" in preview.text
    done = await press(admin, "✅ Xác nhận", "Đã hủy câu", message_id=preview.message_id)
    assert "1 người thay đổi kết quả" in done.text

    # G answers the voided question wrongly after the void: it counts as correct.
    rest = 20 - q_position
    finished = await answer(bot, g, cards[g], attempts[g], wrong_on_q, count=rest)
    assert "20/20" in finished.text
    assert [r.correct_count for r in await attempts_of(bot, e.id)] == [20]
    assert [r.correct_count for r in await attempts_of(bot, f.id)] == [20]
    to_e = await e.wait_for(has(CHANGED))
    assert "hủy một câu hỏi" in to_e.text and "Kết quả được công nhận: 20/20" in to_e.text
    async with engine_of(bot).connect() as conn:
        voided = (
            await conn.execute(select(m.QuestionRow).where(m.QuestionRow.id == question_id))
        ).one()
        items = (
            await conn.execute(
                select(m.AttemptItemRow.correct).where(m.AttemptItemRow.question_id == question_id)
            )
        ).scalars()
        assert all(items)
    assert voided.voided_at is not None and voided.active is False

    # The voided question is no longer drawn; it cannot be voided or re-keyed again.
    h = await registered(fake_api, 9214, "0931000014", "Hoàng Văn Hải")
    await open_exam(h)
    h_items = await items_of(bot, (await attempts_of(bot, h.id))[0].id)
    assert question_id not in {qid for qid, _, _ in h_items}
    again = await say(admin, f"/suacau {question_id}", f"CÂU HỎI #{question_id}")
    assert "đã hủy" in again.text and "🚫 Hủy câu hỏi" not in str(again.buttons)
    await say(admin, "/ketqua", "chưa đăng ký")
    assert [len(changed_messages(u)) for u in (e, f, g)] == [1, 0, 0]


async def test_a_wording_fix_regrades_nothing_and_shows_at_once(
    bank21: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    bot = bank21
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    user = await registered(fake_api, 9221, "0931000021", "Vũ Thị Lan")
    card = await open_exam(user)
    attempt_id = (await attempts_of(bot, user.id))[0].id
    items = await items_of(bot, attempt_id)
    await answer(bot, user, card, attempt_id, right, count=1)
    next_qid = items[1][0]

    # Several questions match a word (accents aside): a numbered pick list.
    pick = await say(admin, "/suacau kiem tra", "câu hỏi khớp")
    assert "Có 21 câu hỏi khớp" in pick.text and "hãy gõ cụ thể hơn" in pick.text
    assert pick.buttons[0][:2] == ["1", "2"]
    await press(admin, "1", "CÂU HỎI #", message_id=pick.message_id)

    shown = await say(admin, f"/suacau {next_qid}", f"CÂU HỎI #{next_qid}")
    asked = await press(admin, "✏️ Sửa nội dung", "Gõ nội dung mới", message_id=shown.message_id)
    assert asked.message_id != shown.message_id
    bad = await say(admin, "A. Như nhau\nB. như nhau", "chưa hợp lệ")
    assert "Phương án A: các phương án trùng nhau" in bad.text
    preview = await say(
        admin,
        "Thủ tục đã sửa lời: thời hạn giải quyết là bao lâu?\nC. Không quy định",
        "SỬA NỘI DUNG",
    )
    assert "Đáp án đúng vẫn là" in preview.text and "C. Không quy định" in preview.text
    await press(admin, "✅ Xác nhận", "Đã sửa nội dung", message_id=preview.message_id)

    # The contestant's card shows the new wording at once; no grade changed.
    resumed = await say(user, "/thi", "Tiếp tục bài thi")
    assert "Câu 2/20" in resumed.text and "Thủ tục đã sửa lời" in resumed.text
    assert "Không quy định" in resumed.text
    assert await outbox_count(bot) == 0
    async with engine_of(bot).connect() as conn:
        fix = (await conn.execute(select(m.QuestionFixRow))).one()
        first = await conn.scalar(
            select(m.AttemptItemRow.correct).where(
                m.AttemptItemRow.attempt_id == attempt_id, m.AttemptItemRow.position == 0
            )
        )
    assert fix.kind == "wording" and fix.question_id == next_qid and first is True


async def test_a_stale_confirmation_changes_nothing(
    bank21: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    bot = bank21
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    async with engine_of(bot).connect() as conn:
        question_id, old = (
            await conn.execute(
                select(m.QuestionRow.id, m.QuestionRow.answer).order_by(m.QuestionRow.id).limit(1)
            )
        ).one()
    first = await say(admin, f"/suacau {question_id}", "CÂU HỎI")
    await press(admin, "🔑 Sửa đáp án", "Chọn đáp án", message_id=first.message_id)
    one = await press(admin, LABELS[(old + 1) % 3], "SỬA ĐÁP ÁN", message_id=first.message_id)
    second = await say(admin, f"/suacau {question_id}", "CÂU HỎI")
    await press(admin, "🔑 Sửa đáp án", "Chọn đáp án", message_id=second.message_id)
    two = await press(admin, LABELS[(old + 2) % 3], "SỬA ĐÁP ÁN", message_id=second.message_id)
    await press(admin, "✅ Xác nhận", "Đã sửa đáp án", message_id=one.message_id)
    query = await admin.press("✅ Xác nhận", message_id=two.message_id)
    answer_ = await admin.wait_callback_answer(query)
    assert answer_.text is not None and "vừa được thay đổi" in answer_.text
    async with engine_of(bot).connect() as conn:
        key = await conn.scalar(select(m.QuestionRow.answer).where(m.QuestionRow.id == question_id))
        fixes = await conn.scalar(select(func.count()).select_from(m.QuestionFixRow))
    assert key == (old + 1) % 3 and fixes == 1
    # Cancelling a preview changes nothing either.
    third = await say(admin, f"/suacau {question_id}", "CÂU HỎI")
    preview = await press(admin, "🚫 Hủy câu hỏi", "HỦY CÂU HỎI", message_id=third.message_id)
    await press(admin, "Hủy", "không có gì thay đổi", message_id=preview.message_id)
    async with engine_of(bot).connect() as conn:
        voided = await conn.scalar(
            select(m.QuestionRow.voided_at).where(m.QuestionRow.id == question_id)
        )
    assert voided is None


async def test_contestants_are_refused_suacau_and_audited(bank21: BotRunner, fake_api: FakeBotApi):
    bot = bank21
    user = await registered(fake_api, 9231, "0931000031", "Đỗ Văn Minh")
    await say(user, "/suacau 1", "chỉ dành cho Ban Tổ chức")
    welcome = await say(user, "/start", "Xin chào")
    query = await user.press_data("a:fix_void:1", welcome.message_id)
    answer_ = await user.wait_callback_answer(query)
    assert answer_.text is not None and "Ban Tổ chức" in answer_.text
    query = await user.press_data("a:fix_ok:AAAAAAAAAAA", welcome.message_id)
    await user.wait_callback_answer(query)
    audit = await audit_rows(bot)
    assert ("telegram:9231", "suacau", "refused") in audit
    assert ("telegram:9231", "fix_void", "refused") in audit
    assert ("telegram:9231", "fix_ok", "refused") in audit
    async with engine_of(bot).connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(m.QuestionFixRow)) == 0
        voided = await conn.scalar(select(func.count()).where(m.QuestionRow.voided_at.is_not(None)))
    assert voided == 0


async def test_answers_graded_with_the_old_key_while_a_fix_commits_are_settled(
    engine: AsyncEngine, rules: ContestRules, clock: ManualClock, database_url: str
):
    """On PostgreSQL a press may read the key just before a fix commits and record its
    answer just after: the fix grades such answers again once it has committed (SQLite
    runs one writer at a time: there is nothing to settle)."""
    from datetime import date, timedelta

    from sqlalchemy import insert, update

    from contest.model import Account, Role
    from contest.ports import FIX_KEY, FixNotice
    from contest.usecases.fixes import FIX_NOTIFICATION, Change
    from contest.usecases.staff import Actor

    await seed_bank(engine, rules, clock, 20)
    service = ContestService(SqlUnitOfWorkFactory(engine), clock, rules)
    now = clock.now()
    async with engine.begin() as conn:
        questions = [
            (r.id, r.answer)
            for r in await conn.execute(select(m.QuestionRow.id, m.QuestionRow.answer))
        ]
        person = (
            await conn.execute(
                insert(m.PersonRow)
                .values(
                    full_name="Ngô Văn Quý",
                    birth_date=date(1990, 1, 1),
                    phone="+84931000099",
                    group="citizen",
                    consent_at=now,
                    registered_at=now,
                    reminders_off=False,
                )
                .returning(m.PersonRow.id)
            )
        ).scalar_one()
        attempt = (
            await conn.execute(
                insert(m.AttemptRow)
                .values(
                    person_id=person,
                    round=1,
                    number=1,
                    question_count=20,
                    status="in_progress",
                    started_at=now,
                    deadline_at=now + timedelta(minutes=20),
                    correct_count=0,
                    warned=0,
                )
                .returning(m.AttemptRow.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(m.AttemptItemRow),
            [
                {"attempt_id": attempt, "position": i, "question_id": qid, "option_order": "012"}
                for i, (qid, _) in enumerate(questions)
            ],
        )
    question_id, old = questions[0]
    new = (old + 1) % 3
    actor = Actor(Account.telegram(ADMIN), Role.ORGANISER)
    preview = await service.fixes.prepare(actor, question_id, Change(FIX_KEY, key=new))
    done = await service.fixes.confirm(actor, preview.token)
    # A press that read the old key: the answer recorded right after the fix committed,
    # graded with the old key, and the attempt finished by it (19 others right).
    async with engine.begin() as conn:
        for position, (qid, key) in enumerate(questions):
            choice = old if qid == question_id else key
            await conn.execute(
                update(m.AttemptItemRow)
                .where(
                    m.AttemptItemRow.attempt_id == attempt,
                    m.AttemptItemRow.position == position,
                )
                .values(choice=choice, correct=True, answered_at=now)
            )
        await conn.execute(
            update(m.AttemptRow)
            .where(m.AttemptRow.id == attempt)
            .values(status="submitted", finished_at=now, correct_count=20, duration_seconds=60.0)
        )
    notice = FixNotice(
        FIX_NOTIFICATION, f"{FIX_NOTIFICATION}:{done.fix_id}:", {"fix_id": done.fix_id}, now, now
    )
    async with service.uow() as uow:
        late = await uow.fixes.settle(question_id, key=new, notice=notice)
        await uow.commit()
    async with engine.connect() as conn:
        count, counting = (
            await conn.execute(
                select(m.AttemptRow.correct_count, m.AttemptRow.counting).where(
                    m.AttemptRow.id == attempt
                )
            )
        ).one()
        told = await conn.scalar(select(func.count()).where(m.OutboxRow.kind == FIX_NOTIFICATION))
    if database_url.startswith("sqlite"):
        assert (late.items, late.attempts, late.notified) == (0, 0, 0)
        assert count == 20
        return
    assert (late.items, late.attempts, late.notified) == (1, 1, 1)
    assert (count, counting, told) == (19, True, 1)
