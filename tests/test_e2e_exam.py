"""Round 1 end to end: attempts, the deadline, best of 2, bad presses, restarts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.importing import QuestionRow
from contest.rules import ContestRules
from contest.services import ContestService
from fakes.telegram import FakeBotApi, FakeMessage, FakeUser
from handlers.callbacks import answer_data
from storage import models as m
from storage.uow import SqlUnitOfWorkFactory
from tests.conftest import BotRunner, has, pg_engine, register_civil_servant, say

LABELS = "ABC"


async def attempt_rows(engine: AsyncEngine, telegram_id: int) -> list[m.AttemptRow]:
    async with engine.connect() as conn:
        person_id = (
            await conn.execute(
                select(m.AccountRow.person_id).where(
                    m.AccountRow.channel == "telegram",
                    m.AccountRow.external_id == str(telegram_id),
                )
            )
        ).scalar_one()
        rows = await conn.execute(
            select(m.AttemptRow)
            .where(m.AttemptRow.person_id == person_id)
            .order_by(m.AttemptRow.id)
        )
        return list(rows.all())  # type: ignore[arg-type]


async def correct_label(engine: AsyncEngine, attempt_id: int, position: int) -> str:
    """Which of A/B/C is right for this question of this attempt, as the person sees it."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(m.AttemptItemRow.option_order, m.QuestionRow.answer)
                .join(m.QuestionRow, m.QuestionRow.id == m.AttemptItemRow.question_id)
                .where(
                    m.AttemptItemRow.attempt_id == attempt_id,
                    m.AttemptItemRow.position == position,
                )
            )
        ).one()
    order = [int(ch) for ch in row.option_order]
    return LABELS[order.index(row.answer)]


def wrong_label(right: str) -> str:
    return "A" if right != "A" else "B"


def engine_of(bot: BotRunner) -> AsyncEngine:
    from bot.app import runtime

    return runtime(bot.app).engine


async def open_exam(user: FakeUser) -> FakeMessage:
    """/thi, then "Bắt đầu": returns the exam card at question 1."""
    intro = await say(user, "/thi", "Bắt đầu")
    await user.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    return await user.wait_for(has("Câu 1/20"))


async def answer_questions(
    bot: BotRunner, user: FakeUser, card: FakeMessage, attempt_id: int, plan: list[bool]
) -> FakeMessage:
    """Answer the next questions, right or wrong as planned; returns the last state."""
    message = card
    for right in plan:
        position = int(message.text.split("Câu ")[1].split("/")[0]) - 1
        label = await correct_label(engine_of(bot), attempt_id, position)
        query = await user.press(label if right else wrong_label(label), message_id=card.message_id)
        await user.wait_callback_answer(query)
        message = await user.wait_for(lambda msg: msg.message_id == card.message_id)
    return message


async def registered(bot: BotRunner, api: FakeBotApi, uid: int, phone: str) -> FakeUser:
    user = api.user(uid)
    await register_civil_servant(user, phone=phone)
    return user


async def test_exam_outside_the_window_says_when(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock, rules: ContestRules
):
    user = await registered(bot, fake_api, 2001, "0910000001")
    clock.set(rules.round1.window.opens - timedelta(days=1))
    reply = await say(user, "/thi", "chưa mở")
    assert "từ ngày 01/08/2024 đến hết ngày 15/08/2024" in reply.text
    clock.set(rules.round1.window.closes + timedelta(hours=1))
    await say(user, "/thi", "đã kết thúc")


async def test_unregistered_person_is_sent_to_registration(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(2002)
    reply = await say(user, "/thi", "chưa đăng ký")
    assert any("Đăng ký dự thi" in label for row in reply.buttons for label in row)


async def test_two_attempts_best_counts(bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock):
    user = await registered(bot, fake_api, 2003, "0910000003")
    intro = await say(user, "/thi", "Bắt đầu")
    assert "20 câu hỏi" in intro.text and "20 phút" in intro.text and "2/2" in intro.text
    card = await open_exam(user)
    assert card.buttons == [["A", "B", "C"]]
    assert "Còn lại 20:00" in card.text
    attempt_id = (await attempt_rows(engine_of(bot), 2003))[0].id

    # Attempt 1: 15 right, 5 wrong, in 6 minutes; every question edits the same message.
    clock.advance(minutes=6)
    done = await answer_questions(bot, user, card, attempt_id, [True] * 15 + [False] * 5)
    assert "hoàn thành bài thi" in done.text
    assert "15/20" in done.text and "6 phút" in done.text
    assert "còn 1 lần thi" in done.text
    assert done.edits == 21  # intro -> 20 questions -> result
    assert done.buttons == [["💬 Góp ý về bài thi"]]  # no answer buttons: feedback only
    # Correct answers are not revealed while round 1 is open.
    assert "Đáp án đúng" not in done.text

    # Attempt 2: three right, then the deadline ends it (an injected clock, no waiting).
    card2 = await open_exam(user)
    attempt2 = (await attempt_rows(engine_of(bot), 2003))[1].id
    await answer_questions(bot, user, card2, attempt2, [True, True, True])
    clock.advance(minutes=21)
    result = await user.wait_for_new_message(timeout=5, predicate=has("Đã hết thời gian làm bài"))
    assert "3/20" in result.text
    assert "15/20" in result.text  # the counting result is still attempt 1
    retired = user.message(card2.message_id)
    assert retired.buttons == [] and "đã kết thúc" in retired.text

    results = await say(user, "/ketqua", "KẾT QUẢ VÒNG 1")
    assert "Lần thi 1: 15/20" in results.text and "Lần thi 2: 3/20" in results.text
    assert "(nộp tự động khi hết giờ)" in results.text
    assert "Kết quả được công nhận: 15/20 câu đúng" in results.text
    no_more = await say(user, "/thi", "đã thi đủ 2 lần")
    assert "15/20" in no_more.text
    rows = await attempt_rows(engine_of(bot), 2003)
    assert [r.status for r in rows] == ["submitted", "expired"]
    assert rows[1].duration_seconds == 20 * 60


async def test_equal_scores_shorter_time_counts(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    user = await registered(bot, fake_api, 2004, "0910000004")
    card = await open_exam(user)
    first = (await attempt_rows(engine_of(bot), 2004))[0].id
    clock.advance(minutes=12)
    await answer_questions(bot, user, card, first, [True] * 10 + [False] * 10)
    card = await open_exam(user)
    second = (await attempt_rows(engine_of(bot), 2004))[1].id
    clock.advance(minutes=4)
    done = await answer_questions(bot, user, card, second, [False] * 10 + [True] * 10)
    assert "Kết quả được công nhận: 10/20 câu đúng, thời gian 4 phút (lần thi 2)" in done.text


async def test_answer_is_committed_before_the_press_is_acknowledged(
    bot: BotRunner, fake_api: FakeBotApi, database_url: str
):
    user = await registered(bot, fake_api, 2005, "0910000005")
    card = await open_exam(user)
    query = await user.press("B", message_id=card.message_id)
    await user.wait_callback_answer(query)
    # Read with a connection of our own, as a process started after a crash would.
    engine = pg_engine(database_url)
    try:
        async with engine.connect() as conn:
            choices = (
                (
                    await conn.execute(
                        select(m.AttemptItemRow.choice).where(m.AttemptItemRow.position == 0)
                    )
                )
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    assert choices == [1]


async def test_bad_presses_change_nothing(bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock):
    user = await registered(bot, fake_api, 2006, "0910000006")
    other = await registered(bot, fake_api, 2007, "0910000007")
    card = await open_exam(user)
    attempt_id = (await attempt_rows(engine_of(bot), 2006))[0].id

    # Double press on question 1: the first counts, the second is refused.
    first = await user.press("A", message_id=card.message_id)
    await user.wait_callback_answer(first)
    stale = await user.press_data(answer_data(attempt_id, 0, 2), card.message_id)
    answer = await user.wait_callback_answer(stale)
    assert answer.text == "Câu hỏi này đã được trả lời hoặc không còn hiệu lực."

    # Text where a button is expected.
    await say(user, "C", "chọn đáp án bằng các nút A, B, C")

    # Someone else's attempt.
    other_intro = await say(other, "/thi", "Bắt đầu")
    forged = await other.press_data(answer_data(attempt_id, 1, 0), other_intro.message_id)
    answer = await other.wait_callback_answer(forged)
    assert answer.text == "Nút này không thuộc bài thi của bạn."

    # Garbage callback data.
    junk = await user.press_data("x:a:1:2", card.message_id)
    assert (
        await user.wait_callback_answer(junk)
    ).text == "Nút này không còn hiệu lực. Vui lòng dùng tin nhắn mới nhất."

    rows = await attempt_rows(engine_of(bot), 2006)
    async with engine_of(bot).connect() as conn:
        answered = (
            await conn.execute(
                select(m.AttemptItemRow.position, m.AttemptItemRow.choice).where(
                    m.AttemptItemRow.attempt_id == rows[0].id,
                    m.AttemptItemRow.choice.is_not(None),
                )
            )
        ).all()
    assert [(p, c) for p, c in answered] == [(0, 0)]

    # A press after the deadline: refused, and the attempt is closed with its result.
    clock.advance(minutes=20, seconds=1)
    late = await user.press("B", message_id=card.message_id)
    answer = await user.wait_callback_answer(late)
    assert answer.text == "Đã hết giờ làm bài!" and answer.show_alert
    closed = await user.wait_for(has("Đã hết thời gian làm bài"))
    assert "/20" in closed.text


async def test_deadline_warnings(bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock):
    user = await registered(bot, fake_api, 2008, "0910000008")
    await open_exam(user)
    clock.advance(minutes=15, seconds=30)
    warn5 = await user.wait_for_new_message(predicate=has("còn khoảng"))
    assert "5 phút" in warn5.text
    clock.advance(minutes=3, seconds=40)
    warn1 = await user.wait_for_new_message(predicate=has("còn khoảng"))
    assert "1 phút" in warn1.text


async def test_restart_mid_attempt_resumes_the_same_attempt(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    user = await registered(bot, fake_api, 2009, "0910000009")
    card = await open_exam(user)
    attempt_id = (await attempt_rows(engine_of(bot), 2009))[0].id
    await answer_questions(bot, user, card, attempt_id, [True] * 5)
    await bot.restart()
    clock.advance(minutes=2)
    resumed = await say(user, "/thi", "Tiếp tục bài thi")
    assert "Câu 6/20" in resumed.text and "Còn lại 18:00" in resumed.text
    assert user.message(card.message_id).buttons == []  # the old card is retired
    rows = await attempt_rows(engine_of(bot), 2009)
    assert len(rows) == 1 and rows[0].id == attempt_id
    done = await answer_questions(bot, user, resumed, attempt_id, [True] * 15)
    assert "20/20" in done.text


async def test_deadline_that_passes_while_the_bot_is_stopped(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    user = await registered(bot, fake_api, 2010, "0910000010")
    card = await open_exam(user)
    attempt_id = (await attempt_rows(engine_of(bot), 2010))[0].id
    await answer_questions(bot, user, card, attempt_id, [True] * 2)
    await bot.stop()
    clock.advance(minutes=30)
    await bot.start()
    result = await user.wait_for_new_message(predicate=has("Đã hết thời gian làm bài"))
    assert "2/20" in result.text and "còn 1 lần thi" in result.text
    rows = await attempt_rows(engine_of(bot), 2010)
    assert rows[0].status == "expired" and rows[0].correct_count == 2
    # Exactly one result message, however many sweeps ran.
    await say(user, "/ketqua", "KẾT QUẢ")
    results = [msg for msg in user.bot_messages() if "Đã hết thời gian làm bài" in msg.text]
    assert len(results) == 1


async def test_restart_rearms_open_deadlines(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    user = await registered(bot, fake_api, 2011, "0910000011")
    await open_exam(user)
    attempt_id = (await attempt_rows(engine_of(bot), 2011))[0].id
    await bot.restart()
    from bot.app import runtime

    deadlines = runtime(bot.app).deadlines
    assert attempt_id in deadlines._jobs  # armed from the database on start-up
    job = deadlines._jobs[attempt_id]
    assert job.next_t is not None


@pytest.fixture
async def html_bank(engine: AsyncEngine, rules: ContestRules, clock: ManualClock) -> AsyncEngine:
    service = ContestService(SqlUnitOfWorkFactory(engine), clock, rules)
    rows = [
        QuestionRow(
            "Ký tự <đặc biệt> & emoji",
            f"Câu {i}: 1 < 2 && 3 > 2? <b>không phải thẻ</b> 🏛️",
            (f"Đúng <{i}> & 😀", f"Sai {i} &amp;", f"Không rõ {i} </i>"),
            0,
        )
        for i in range(25)
    ]
    await service.console.import_questions(rows)
    await service.console.import_units(
        [
            __import__("contest.importing", fromlist=["UnitRow"]).UnitRow(
                "P-CATLINH",
                "UBND phường Cát Linh",
                __import__("contest.model", fromlist=["UnitKind"]).UnitKind.WARD,
                25,
            )
        ]
    )
    return engine


async def test_question_text_with_html_characters_is_shown_exactly(
    html_bank: AsyncEngine,
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    database_url: str,
):
    runner = BotRunner(fake_api, rules, clock, lambda: pg_engine(database_url))
    await runner.start()
    try:
        user = await registered(runner, fake_api, 2012, "0910000012")
        card = await open_exam(user)
        assert "1 < 2 && 3 > 2? <b>không phải thẻ</b> 🏛️" in card.text
        assert "Ký tự <đặc biệt> & emoji" in card.text
        assert "&amp;" in card.text and "</i>" in card.text and "😀" in card.text
    finally:
        await runner.stop()


async def test_unknown_button_is_answered(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(2013)
    welcome = await say(user, "/start", "Xin chào")
    query = await user.press_data("zz:old-build:1", welcome.message_id)
    answer = await user.wait_callback_answer(query)
    assert answer.text is not None and "không còn hiệu lực" in answer.text


async def test_answers_are_graded_with_the_key_as_imported_now(
    bot: BotRunner, fake_api: FakeBotApi, rules: ContestRules, clock: ManualClock
):
    user = await registered(bot, fake_api, 2014, "0910000014")
    card = await open_exam(user)
    attempt_id = (await attempt_rows(engine_of(bot), 2014))[0].id
    old_label = await correct_label(engine_of(bot), attempt_id, 0)
    # The organisers fix the key of question 1 from another process (a CLI import).
    async with engine_of(bot).connect() as conn:
        question_id = (
            await conn.execute(
                select(m.AttemptItemRow.question_id).where(
                    m.AttemptItemRow.attempt_id == attempt_id, m.AttemptItemRow.position == 0
                )
            )
        ).scalar_one()
        row = (
            await conn.execute(select(m.QuestionRow).where(m.QuestionRow.id == question_id))
        ).one()
    fixed = QuestionRow(
        row.topic, row.text, (row.option_a, row.option_b, row.option_c), (row.answer + 1) % 3
    )
    other_process = ContestService(SqlUnitOfWorkFactory(engine_of(bot)), clock, rules)
    await other_process.console.import_questions([fixed])
    new_label = await correct_label(engine_of(bot), attempt_id, 0)
    assert new_label != old_label
    query = await user.press(new_label, message_id=card.message_id)
    await user.wait_callback_answer(query)
    async with engine_of(bot).connect() as conn:
        correct = (
            await conn.execute(
                select(m.AttemptItemRow.correct).where(
                    m.AttemptItemRow.attempt_id == attempt_id, m.AttemptItemRow.position == 0
                )
            )
        ).scalar_one()
    assert correct is True
