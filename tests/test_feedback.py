"""Contestants' feedback end to end through the fake Bot API: /gopy, the button under a
result with the question picked, the organisers' /phanhoi (list, answer, close), the answer
delivered once through the outbox; refusals and limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.errors import ContestError
from contest.rules import ContestRules
from contest.usecases.feedback import TEXT_MAX, clean_text
from fakes.telegram import FakeBotApi, FakeMessage, FakeUser
from storage import models as m
from tests.conftest import BotRunner, has, pg_engine, register_civil_servant, say

ADMIN = 9001
DEPUTY = 9002


@pytest.fixture
async def console_bot(
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


def engine_of(bot: BotRunner) -> AsyncEngine:
    from bot.app import runtime

    return runtime(bot.app).engine


async def rows_of(bot: BotRunner, model: type) -> list:  # type: ignore[type-arg]
    async with engine_of(bot).connect() as conn:
        return list((await conn.execute(select(model).order_by(model.id))).all())  # type: ignore[attr-defined]


async def take_attempt(user: FakeUser) -> FakeMessage:
    """/thi, «Bắt đầu», then A to every question: the result message."""
    intro = await say(user, "/thi", "Bắt đầu")
    await user.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    card = await user.wait_for(has("Câu 1/20"))
    for number in range(2, 22):
        await user.press("A", message_id=card.message_id)
        expected = f"Câu {number}/20" if number <= 20 else "hoàn thành bài thi"
        card = await user.wait_for(has(expected))
    return card


def labels(message: FakeMessage) -> list[str]:
    return [label for row in message.buttons for label in row]


async def question_text(bot: BotRunner, attempt_id: int, position: int) -> tuple[str, str]:
    """A question of an attempt: its text, and the right option's label as shown there."""
    async with engine_of(bot).connect() as conn:
        row = (
            await conn.execute(
                select(m.QuestionRow.text, m.QuestionRow.answer, m.AttemptItemRow.option_order)
                .join(m.AttemptItemRow, m.AttemptItemRow.question_id == m.QuestionRow.id)
                .where(
                    m.AttemptItemRow.attempt_id == attempt_id,
                    m.AttemptItemRow.position == position,
                )
            )
        ).one()
    order = [int(ch) for ch in row.option_order]
    return row.text, "ABC"[order.index(row.answer)]


async def test_feedback_on_a_question_is_listed_answered_and_the_answer_arrives_once(
    console_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    user = fake_api.user(9201, first_name="An")
    await register_civil_servant(user, name="Nguyễn Văn An", phone="0930000201")
    result = await take_attempt(user)
    assert "💬 Góp ý về bài thi" in labels(result)

    # The button under the result: the questions of that attempt, numbered 1..20.
    await user.press("💬 Góp ý về bài thi", message_id=result.message_id)
    picker = await user.wait_for(has("Bạn muốn góp ý về câu hỏi nào"))
    assert picker.message_id != result.message_id  # the result stays as it was
    assert "hoàn thành bài thi" in user.message(result.message_id).text
    attempt = (await rows_of(console_bot, m.AttemptRow))[0]
    text7, key7 = await question_text(console_bot, attempt.id, 6)
    assert "7. " + text7[:40] in picker.text
    assert [str(n) for n in range(1, 21)] == [x for x in labels(picker) if x.isdigit()]
    await user.press("7", message_id=picker.message_id)
    asked = await user.wait_for(has("Góp ý về câu 7"))
    assert "Bạn đã chọn: A." in asked.text
    sent = await say(user, "câu 7 có hai đáp án đúng", "đã nhận góp ý")
    assert "#1" in sent.text

    # A contestant may not read them.
    await say(user, "/phanhoi", "chỉ dành cho Ban Tổ chức")

    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    listing = await say(admin, "/phanhoi", "GÓP Ý CỦA THÍ SINH")
    assert "1 góp ý chưa xử lý" in listing.text
    assert "Nguyễn Văn An" in listing.text and "UBND phường Cát Linh" in listing.text
    assert "lần thi 1, câu 7" in listing.text
    assert f"Đáp án đúng: {key7}." in listing.text and "Thí sinh chọn: A" in listing.text
    assert "câu 7 có hai đáp án đúng" in listing.text
    await admin.press("✍️ Trả lời #1", message_id=listing.message_id)
    prompt = await admin.wait_for(has("Gõ câu trả lời"))
    assert prompt.message_id != listing.message_id
    assert "✅ (đáp án đúng)" in prompt.text
    answer = "Cảm ơn bạn. Câu 7 chỉ có đáp án đúng là phương án đã công bố; <xem> Điều 5."
    done = await say(admin, answer, "Đã gửi câu trả lời")
    assert "Nguyễn Văn An" in done.text and "#1" in done.text

    received = await user.wait_for(has("trả lời góp ý #1"), timeout=10)
    assert answer in received.text and "câu 7 có hai đáp án đúng" in received.text
    assert "lần thi 1, câu 7" in received.text

    # Answered once: a second answer is refused, and the contestant gets one message.
    again = await admin.press_data("a:fba:1", listing.message_id)
    reply = await admin.wait_callback_answer(again)
    assert reply.text is not None and "đã được xử lý" in reply.text
    await asyncio.sleep(0.5)  # a few sweeps of the outbox
    assert sum("trả lời góp ý #1" in msg.text for msg in user.bot_messages()) == 1
    item = (await rows_of(console_bot, m.FeedbackRow))[0]
    assert item.status == "answered" and item.answer == answer
    assert item.attempt_id == attempt.id and item.position == 6
    assert item.answered_by == f"telegram:{ADMIN}" and item.closed_at is not None
    audit = [(r.actor, r.action, r.outcome) for r in await rows_of(console_bot, m.AuditRow)]
    assert (f"telegram:{ADMIN}", "feedback_answer", "ok") in audit
    assert (f"telegram:{ADMIN}", "fba", "failed") in audit
    assert ("telegram:9201", "phanhoi", "refused") in audit
    # A contestant's own feedback is no console action: nothing of theirs but the refusal.
    assert [a for a in audit if a[0] == "telegram:9201"] == [
        ("telegram:9201", "phanhoi", "refused")
    ]


async def test_feedback_closed_without_an_answer_sends_nothing(
    console_bot: BotRunner, fake_api: FakeBotApi
):
    user = fake_api.user(9202)
    await register_civil_servant(user, name="Trần Văn Bình", phone="0930000202")
    await say(user, "/gopy", "GÓP Ý, HỎI ĐÁP")
    await say(user, "Xin hỏi thời gian thi vòng 2?", "đã nhận góp ý")
    await say(user, "/gopy Bao giờ có kết quả?", "đã nhận góp ý")  # the text after the command

    admin = fake_api.user(ADMIN)
    newest = await say(admin, "/phanhoi moi", "mới nhất trước")
    assert newest.text.index("#2") < newest.text.index("#1")
    await admin.press("↕️ Xem cũ nhất trước", message_id=newest.message_id)
    oldest = await admin.wait_for(has("cũ nhất trước"))
    assert oldest.message_id == newest.message_id
    assert oldest.text.index("#1") < oldest.text.index("#2")
    assert "góp ý chung" in oldest.text
    await admin.press("✔️ Đóng #1", message_id=oldest.message_id)
    after = await admin.wait_for(has("Đã đóng góp ý #1"))
    assert "1 góp ý chưa xử lý" in after.text and "#2 ·" in after.text

    full = await say(admin, "/phanhoi 1", "GÓP Ý #1")
    assert "đã đóng, không trả lời" in full.text and "thời gian thi vòng 2" in full.text
    assert full.buttons == []

    # Two organisers at once: one is typing an answer while the other closes the item.
    await admin.press("✍️ Trả lời #2", message_id=after.message_id)
    await admin.wait_for(has("Gõ câu trả lời"))
    deputy = fake_api.user(DEPUTY)
    await say(deputy, "/phanhoi", "#2 ·")
    await deputy.press("✔️ Đóng #2")
    await deputy.wait_for(has("Đã đóng góp ý #2"))
    await say(admin, "Kết quả có vào tuần sau.", "đã được xử lý")
    await say(admin, "Kết quả có vào tuần sau.", "chưa đăng ký")  # no longer an answer

    await asyncio.sleep(0.5)
    assert not any("trả lời góp ý" in msg.text for msg in user.bot_messages())
    items = await rows_of(console_bot, m.FeedbackRow)
    assert [(i.status, i.answer) for i in items] == [("closed", None), ("closed", None)]
    audit = [(r.action, r.outcome, r.target) for r in await rows_of(console_bot, m.AuditRow)]
    assert ("feedback_close", "ok", "feedback:1") in audit
    assert ("feedback_close", "ok", "feedback:2") in audit
    assert ("fb_answer", "failed", "input:fb_answer") in audit


async def test_a_contestant_is_refused_the_organisers_side_and_it_is_audited(
    console_bot: BotRunner, fake_api: FakeBotApi
):
    user = fake_api.user(9203)
    await register_civil_servant(user, phone="0930000203")
    sent = await say(user, "/gopy Góp ý thử", "đã nhận góp ý")
    await say(user, "/phanhoi", "chỉ dành cho Ban Tổ chức")
    for data in ("a:fbc:1:0:o", "a:fba:1", "a:fbl:0:o"):
        query = await user.press_data(data, sent.message_id)
        answer = await user.wait_callback_answer(query)
        assert answer.text is not None and "Ban Tổ chức" in answer.text
    items = await rows_of(console_bot, m.FeedbackRow)
    assert [i.status for i in items] == ["open"]
    audit = [(r.actor, r.action, r.outcome) for r in await rows_of(console_bot, m.AuditRow)]
    assert audit == [
        ("telegram:9203", "phanhoi", "refused"),
        ("telegram:9203", "fbc", "refused"),
        ("telegram:9203", "fba", "refused"),
        ("telegram:9203", "fbl", "refused"),
    ]


async def test_limits_of_feedback(console_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock):
    stranger = fake_api.user(9204)
    await say(stranger, "/gopy", "chưa đăng ký")

    user = fake_api.user(9205)
    await register_civil_servant(user, phone="0930000205")
    await say(user, "/gopy", "GÓP Ý")
    too_long = await say(user, "x" * (TEXT_MAX + 1), "vượt quá")
    assert "2.001 ký tự" in too_long.text and "2.000 ký tự" in too_long.text
    await say(user, "chuông \x07 kêu", "ký tự điều khiển")
    # Still waiting for the text: a good one is kept.
    await say(user, "Góp ý thứ nhất\nhai dòng", "đã nhận góp ý")
    await say(user, "/gopy Góp ý thứ hai", "đã nhận góp ý")
    await say(user, "/gopy Góp ý thứ ba", "đã nhận góp ý")
    refused = await say(user, "/gopy Góp ý thứ tư", "vui lòng gửi thêm từ")
    assert "3 góp ý trong vòng một giờ" in refused.text and "10:00" in refused.text
    clock.advance(hours=1)
    await say(user, "/gopy Góp ý thứ tư", "đã nhận góp ý")

    # Text asked for long ago is not taken as feedback.
    clock.advance(hours=2)
    await say(user, "/gopy", "GÓP Ý")
    clock.advance(hours=2)
    await say(user, "Chào bạn", "đã được hủy")
    await say(user, "Chào bạn", "chưa hiểu")  # and then it is plain text again

    # A forged button for someone else's attempt, or an unknown one.
    other = fake_api.user(9206)
    await register_civil_servant(other, phone="0930000206")
    result = await take_attempt(other)
    attempt_id = (await rows_of(console_bot, m.AttemptRow))[0].id
    query = await user.press_data(f"a:fb:{attempt_id}", too_long.message_id)
    await user.wait_callback_answer(query)
    await user.wait_for(has("Không tìm thấy bài thi này"))
    await other.press("💬 Góp ý về bài thi", message_id=result.message_id)
    picker = await other.wait_for(has("Bạn muốn góp ý"))
    query = await other.press_data(f"a:fbq:{attempt_id}:99", picker.message_id)
    await other.wait_callback_answer(query)
    await other.wait_for(has("Câu hỏi không hợp lệ"))
    texts = [i.text for i in await rows_of(console_bot, m.FeedbackRow)]
    assert texts == [
        "Góp ý thứ nhất\nhai dòng",
        "Góp ý thứ hai",
        "Góp ý thứ ba",
        "Góp ý thứ tư",
    ]


async def test_results_offer_feedback_for_each_finished_attempt(
    console_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    user = fake_api.user(9207)
    await register_civil_servant(user, phone="0930000207")
    await take_attempt(user)
    # The second ends at its deadline: its result comes as a notice, with the button too.
    intro = await say(user, "/thi", "Bắt đầu")
    await user.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    await user.wait_for(has("Câu 1/20"))
    clock.advance(minutes=21)
    expired = await user.wait_for_new_message(predicate=has("Đã hết thời gian làm bài"))
    assert labels(expired) == ["💬 Góp ý về bài thi"]
    results = await say(user, "/ketqua", "KẾT QUẢ VÒNG 1")
    assert labels(results) == ["💬 Góp ý về lần thi 1", "💬 Góp ý về lần thi 2"]
    await user.press("💬 Góp ý về lần thi 2", message_id=results.message_id)
    picker = await user.wait_for(has("lần thi 2"))
    await user.press("📝 Góp ý chung về bài thi", message_id=picker.message_id)
    await user.wait_for(has("Góp ý chung về lần thi 2"))
    await user.press("✖️ Hủy")
    await user.wait_for(has("Đã hủy"))
    await say(user, "Chào", "chưa hiểu")  # no longer waiting for feedback
    assert await rows_of(console_bot, m.FeedbackRow) == []


def test_clean_text() -> None:
    assert clean_text("  câu 7 có hai đáp án đúng \r\n ") == "câu 7 có hai đáp án đúng"
    assert clean_text("dòng 1\r\ndòng 2\tcột") == "dòng 1\ndòng 2\tcột"
    assert clean_text("x" * TEXT_MAX) == "x" * TEXT_MAX
    for bad, code in (
        ("", "feedback_empty"),
        (" \n\t ", "feedback_empty"),
        ("x" * (TEXT_MAX + 1), "feedback_too_long"),
        ("a\x00b", "feedback_control"),
        ("a\x1bb", "feedback_control"),
        ("a\u202eb", "feedback_control"),
    ):
        with pytest.raises(ContestError) as caught:
            clean_text(bad)
        assert caught.value.code == code, bad


async def test_the_longest_items_still_fit_in_one_message(
    console_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    """Four items of 2,000 characters about questions, from a contestant with a long name,
    and an answer of 2,000: the list, the item and the notice each fit in one message."""
    user = fake_api.user(9208)
    name = "Tôn Nữ " + "Thị Hoàng Khánh Linh " * 4
    await register_civil_servant(user, name=name.strip(), phone="0930000208")
    result = await take_attempt(user)
    for n in range(4):
        if n == 3:
            clock.advance(hours=1)  # past the hourly limit
        await user.press("💬 Góp ý về bài thi", message_id=result.message_id)
        picker = await user.wait_for(has("Bạn muốn góp ý"))
        await user.press(str(n + 1), message_id=picker.message_id)
        await user.wait_for(has(f"Góp ý về câu {n + 1}"))
        await say(user, ("Câu này sai <b>& " * 200)[:TEXT_MAX], "đã nhận góp ý")
    admin = fake_api.user(ADMIN)
    listing = await say(admin, "/phanhoi", "4 góp ý chưa xử lý")
    assert all(f"#{n} ·" in listing.text for n in range(1, 5))
    await admin.press("✍️ Trả lời #1", message_id=listing.message_id)
    await admin.wait_for(has("Gõ câu trả lời"))
    await say(admin, "Đ" * TEXT_MAX, "Đã gửi câu trả lời")
    full = await say(admin, "/phanhoi 1", "GÓP Ý #1")
    assert "đã trả lời" in full.text
    notice = await user.wait_for(has("trả lời góp ý #1"), timeout=10)
    assert "Đ" * TEXT_MAX in notice.text
