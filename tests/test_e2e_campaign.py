"""The whole campaign on its own schedule, through the fake Bot API, with the clock moved from
the day before the launch (14/7) to the prizes in September and the bot restarted twice on
the way, once with the time-only tie rule and once with the prediction question: each
person hears each reminder once and at the right moment; round 1 closes; qualification
has a tie at the cut (time rule) or is decided by the predictions; round 2 sees a right
code, a wrong code and a non-qualifier; the prizes have a tie on a boundary, which the
organisers settle explicitly. Nothing is repeated or lost across the restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.model import Account
from contest.rules import LOCAL_TZ, ContestRules, PrizeRules, TieBreak
from contest.services import ContestService
from fakes.telegram import FakeBotApi, FakeMessage, FakeUser
from tests.conftest import BotRunner, has, pg_engine, register_citizen, register_civil_servant, say
from tests.test_console_staff import ADMIN
from tests.test_console_stats import take_exam

VENUE = "Hội trường UBND quận Đống Đa"
QUESTION = "Có bao nhiêu người trả lời đúng cả 20 câu hỏi của vòng 1?"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LOCAL_TZ)  # type: ignore[arg-type,misc]


@pytest.fixture(params=["time", "prediction"])
def rules(request: pytest.FixtureRequest, rules: ContestRules) -> ContestRules:
    """The plan's schedule, round 2 decided (5/9 at the district's hall), two qualifiers,
    a first and a second prize; the tie rule of the parameter."""
    prediction = request.param == "prediction"
    return replace(
        rules,
        round2=replace(rules.round2, qualifiers=2, venue=VENUE, scheduled=True),
        prizes=PrizeRules(first=1, second=1, third=0, consolation=0),
        tie_break=(TieBreak.PREDICTION, TieBreak.TIME) if prediction else (TieBreak.TIME,),
        prediction_question=QUESTION if prediction else "",
    )


@pytest.fixture
async def campaign_bot(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    seeded: AsyncEngine,
    database_url: str,
) -> AsyncIterator[BotRunner]:
    clock.set(local(2024, 7, 14, 10, 0))
    runner = BotRunner(
        fake_api, rules, clock, lambda: pg_engine(database_url), admin_ids=str(ADMIN)
    )
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


def count(user: FakeUser, fragment: str) -> int:
    return sum(1 for message in user.bot_messages() if fragment in message.text)


async def received(user: FakeUser, fragment: str, times: int = 1) -> FakeMessage:
    """Wait until ``user`` has ``times`` bot messages containing ``fragment``; the last."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 8.0
    while count(user, fragment) < times:
        if loop.time() > deadline:
            raise AssertionError(f"{user.id} got no {fragment!r}:\n{user.transcript()}")
        await asyncio.sleep(0.05)
    return [m for m in user.bot_messages() if fragment in m.text][-1]


async def at(clock: ManualClock, when: datetime) -> None:
    """Move the clock, and give the schedulers (ticks of about a second) time to see it."""
    clock.set(when)
    await asyncio.sleep(1.2)


LAUNCH = "đã được phát động"
OPENING = "Vòng 1 đã mở"
DAILY = "chưa tham gia thi vòng 1"
LAST_DAYS = "Vòng 1 sắp kết thúc"
LAST_DAY = "Hôm nay là ngày cuối cùng của vòng 1"
INVITE = "Bạn có tên trong danh sách thí sinh thi vòng 2"
FINAL = "KẾT QUẢ CHUNG CUỘC VÒNG 1"
DAY_BEFORE = "Ngày mai diễn ra vòng 2"
HOUR_BEFORE = "còn khoảng 1 giờ nữa"


async def exam(
    service: ContestService,
    clock: ManualClock,
    user: FakeUser,
    correct: int,
    seconds: float,
    prediction: str | None,
) -> None:
    """An attempt (the first ``correct`` answers right, ``seconds`` long); with the
    prediction rule the person then types their prediction in the chat."""
    await take_exam(service, clock, Account.telegram(user.id), correct, seconds)
    if prediction is not None:
        await say(user, prediction, f"{correct}/20")


async def test_the_whole_campaign_from_the_launch_to_the_prizes(
    campaign_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock, rules: ContestRules
):
    service = campaign_bot.service
    predicting = rules.uses_prediction
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    an = fake_api.user(8901)  # two attempts, the best of round 1
    binh = fake_api.user(8902)  # one attempt, 16/20 in 100 s
    chi = fake_api.user(8903)  # registers, never takes the exam
    dung = fake_api.user(8904)  # one attempt under 50%: not eligible
    em = fake_api.user(8905)  # 16/20 in 100 s like Bình, submitted later
    await register_civil_servant(an, phone="0940000101")
    await register_citizen(binh, phone="0940000102")
    await register_civil_servant(chi, name="Lê Văn Chí", phone="0940000103")
    await register_citizen(dung, name="Phạm Thị Dung", phone="0940000104")
    await register_civil_servant(em, name="Hoàng Văn Em", phone="0940000105")
    everyone = (an, binh, chi, dung, em)

    # 15/7: the launch, once, after the quiet hours; then the first restart.
    await at(clock, local(2024, 7, 15, 7, 0, 5))
    for user in everyone:
        await received(user, LAUNCH)
    await campaign_bot.restart()
    await at(clock, local(2024, 7, 20, 9, 0))
    assert [count(u, LAUNCH) for u in everyone] == [1] * 5
    assert count(an, OPENING) == 0  # nothing of round 1 before it opens

    # 1/8: round 1 opens. With the prediction rule each attempt ends with the question.
    await at(clock, local(2024, 8, 1, 7, 0, 5))
    for user in everyone:
        await received(user, OPENING)
    guess = (lambda n: n) if predicting else (lambda n: None)
    await exam(service, clock, an, 14, 60, guess("40"))
    await exam(service, clock, an, 18, 200, guess("40"))
    await exam(service, clock, binh, 16, 100, guess("7"))
    await exam(service, clock, dung, 9, 60, guess("5"))
    await exam(service, clock, em, 16, 100, guess("3"))
    await at(clock, local(2024, 8, 1, 19, 0, 5))  # the daily reminder: Chí only
    await received(chi, DAILY)
    assert sum(count(u, DAILY) for u in everyone) == 1

    # Each evening of the window, the daily reminder to Chí; 12/8, three days before the
    # close, instead a reminder to those with an attempt left (all but An); the last day
    # (15/8), the same in the morning. An has no attempt left and hears none of them.
    dailies = 1
    for day in range(2, 15):
        clock.set(local(2024, 8, day, 19, 0, 5))
        if day == 12:
            for user in (binh, chi, dung, em):
                await received(user, LAST_DAYS)
        else:
            dailies += 1
            await received(chi, DAILY, times=dailies)
    await at(clock, local(2024, 8, 15, 8, 0, 5))
    for user in (binh, chi, dung, em):
        await received(user, LAST_DAY)
    assert count(an, LAST_DAYS) == count(an, LAST_DAY) == count(an, DAILY) == 0
    assert sum(count(u, DAILY) for u in everyone) == count(chi, DAILY) == 13

    # 16/8: round 1 closed. With the prediction rule the official figure is entered first.
    await at(clock, local(2024, 8, 16, 9, 0))
    await say(binh, "/thi", "Vòng 1 đã kết thúc")
    if predicting:  # no list cut by time alone under the prediction rule
        await say(admin, "/vongloai", "cần nhập đáp án chính thức bằng lệnh /dapandudoan")
        await say(admin, "/dapandudoan 2", "Đã lưu đáp án chính thức: 2.")
    proposal = await say(admin, "/vongloai", "DANH SÁCH THÍ SINH VÀO VÒNG 2 (đề xuất)")
    assert "1. Nguyễn Văn An" in proposal.text and "Phạm Thị Dung" not in proposal.text
    if predicting:
        # Bình and Em: 16/20 in 100 s both; Em's prediction (3) is closer to 2 than 7.
        assert "2. Hoàng Văn Em" in proposal.text and "Đồng hạng" not in proposal.text
        second, out = em, binh
    else:
        # Equal by the rule (correct, time): a tie at the cut, shown with what decided it.
        assert "Đồng hạng ở ranh giới vào vòng 2" in proposal.text
        assert "Quy tắc đã phân định theo thời điểm nộp bài sớm hơn" in proposal.text
        assert "✔️ 2. Trần Thị Bình" in proposal.text and "✖️ 2. Hoàng Văn Em" in proposal.text
        second, out = binh, em
    await admin.press("✅ Xác nhận 2 thí sinh (theo quy tắc)", message_id=proposal.message_id)
    await admin.wait_for(has("Đã xác nhận danh sách"))
    if predicting:  # the figure the list was cut by stays
        await say(admin, "/dapandudoan 7", "không thể nhập lại đáp án nữa")
    for qualifier in (an, second):
        invite = await received(qualifier, INVITE)
        assert VENUE in invite.text and "05/09/2024" in invite.text
    for user in (out, dung):
        await received(user, FINAL)
    assert "16/20" in (await received(out, FINAL)).text
    assert count(chi, FINAL) == count(chi, INVITE) == 0  # took no part

    # The second restart, then the round-2 reminders to the qualifiers only.
    await campaign_bot.restart()
    opens = rules.round2.round.window.opens
    await at(clock, opens - timedelta(days=1) + timedelta(seconds=5))
    for qualifier in (an, second):
        assert VENUE in (await received(qualifier, DAY_BEFORE)).text
    await at(clock, opens - timedelta(hours=1) + timedelta(seconds=5))
    for qualifier in (an, second):
        await received(qualifier, HOUR_BEFORE)
    assert sum(count(u, DAY_BEFORE) + count(u, HOUR_BEFORE) for u in (out, chi, dung)) == 0

    # 5/9 at the hall: a wrong code, a non-qualifier, the right code; both qualifiers
    # start together and let the time run out: equal results.
    await at(clock, opens + timedelta(minutes=1))
    await say(admin, "/mavong2 HOITRUONG", "Đã đặt mã phòng thi vòng 2")
    await say(dung, "/vong2", "không có tên trong danh sách thí sinh thi vòng 2")
    await say(an, "/vong2", "Vui lòng gõ mã phòng thi do Ban Tổ chức công bố")
    await say(an, "SAI999", "Bạn còn 4 lần nhập thử")
    for qualifier in (an, second):
        ready = await say(qualifier, "/vong2 hoitruong", "Mã phòng thi đúng")
        await qualifier.press("▶️ Bắt đầu làm bài", message_id=ready.message_id)
        await qualifier.wait_for(has("Vòng 2 · Lần thi 1/1 · Câu 1/20"))
    await at(clock, opens + timedelta(minutes=1 + rules.round2.round.minutes, seconds=5))
    for qualifier in (an, second):
        await received(qualifier, "Đã hết thời gian làm bài")

    # September: a tie on the boundary of the first prize, never settled silently.
    await at(clock, rules.round2.round.window.closes + timedelta(minutes=1))
    preview = await say(admin, "/giaithuong", "GIẢI THƯỞNG (đề xuất")
    assert "Có đồng hạng ở ranh giới giải: hệ thống không tự phân định" in preview.text
    labels = [label for row in preview.buttons for label in row]
    assert "✅ Xác nhận 2 giải" not in labels  # no plain confirm while the tie stands
    await admin.press("✅ Xác nhận, phân định đồng hạng như trên", message_id=preview.message_id)
    await admin.wait_for(has("Đã xác nhận 2 giải"))
    first = await received(an, "Chúc mừng! Bạn đạt Giải")
    other = await received(second, "Chúc mừng! Bạn đạt Giải")
    assert {"Giải Nhất" in first.text, "Giải Nhất" in other.text} == {True, False}
    assert count(out, "Chúc mừng") == count(dung, "Chúc mừng") == 0

    # Across the whole campaign and both restarts, each message reached each person once.
    for fragment in (LAUNCH, OPENING):
        assert [count(u, fragment) for u in everyone] == [1] * 5, fragment
    for user in (binh, chi, dung, em):
        assert (count(user, LAST_DAYS), count(user, LAST_DAY)) == (1, 1)
    for qualifier in (an, second):
        assert [count(qualifier, f) for f in (INVITE, DAY_BEFORE, HOUR_BEFORE)] == [1, 1, 1]
    assert (count(out, FINAL), count(dung, FINAL)) == (1, 1)
    assert count(chi, DAILY) == 13
