"""The whole campaign on its own schedule, through the fake Bot API, with the clock moved from
the day before the launch (14/7) to the prizes in September and the bot restarted twice on
the way: each person hears each reminder once and at the right moment, qualification,
round 2 and prizes follow, and nothing is repeated or lost across the restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.model import Account
from contest.rules import LOCAL_TZ, ContestRules, PrizeRules
from fakes.telegram import FakeBotApi, FakeMessage, FakeUser
from tests.conftest import BotRunner, has, pg_engine, register_citizen, register_civil_servant, say
from tests.test_console_staff import ADMIN
from tests.test_console_stats import take_exam

VENUE = "Hội trường UBND quận Đống Đa"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LOCAL_TZ)  # type: ignore[arg-type,misc]


@pytest.fixture
def rules(rules: ContestRules) -> ContestRules:
    """The plan's schedule, round 2 decided (5/9 at the district's hall), one qualifier and
    one prize, so the test stays small."""
    return replace(
        rules,
        round2=replace(rules.round2, qualifiers=1, venue=VENUE, scheduled=True),
        prizes=PrizeRules(first=1, second=0, third=0, consolation=0),
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


async def test_the_whole_campaign_from_the_launch_to_the_prizes(
    campaign_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock, rules: ContestRules
):
    service = campaign_bot.service
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    an = fake_api.user(8901)  # two attempts, the best
    binh = fake_api.user(8902)  # one attempt only
    chi = fake_api.user(8903)  # registers, never takes the exam
    await register_civil_servant(an, phone="0940000101")
    await register_citizen(binh, phone="0940000102")
    await register_civil_servant(chi, name="Lê Văn Chí", phone="0940000103")
    everyone = (an, binh, chi)

    # 15/7: the launch, once, after the quiet hours; then the first restart.
    await at(clock, local(2024, 7, 15, 7, 0, 5))
    for user in everyone:
        await received(user, LAUNCH)
    await campaign_bot.restart()
    await at(clock, local(2024, 7, 20, 9, 0))
    assert [count(u, LAUNCH) for u in everyone] == [1, 1, 1]
    assert count(an, OPENING) == 0  # nothing of round 1 before it opens

    # 1/8: round 1 opens; An takes two attempts, Bình one.
    await at(clock, local(2024, 8, 1, 7, 0, 5))
    for user in everyone:
        await received(user, OPENING)
    await take_exam(service, clock, Account.telegram(an.id), 14)
    await take_exam(service, clock, Account.telegram(an.id), 18, seconds=200)
    await take_exam(service, clock, Account.telegram(binh.id), 12)
    await at(clock, local(2024, 8, 1, 19, 0, 5))  # the daily reminder: Chí only
    await received(chi, DAILY)
    assert count(an, DAILY) == count(binh, DAILY) == 0

    # Each evening of the window, the daily reminder to Chí; 12/8, three days before the
    # close, instead a reminder to those with an attempt left (Bình, Chí); the last day
    # (15/8), the same in the morning. An has no attempt left and hears none of them.
    dailies = 1
    for day in range(2, 15):
        clock.set(local(2024, 8, day, 19, 0, 5))
        if day == 12:
            await received(binh, LAST_DAYS)
            await received(chi, LAST_DAYS)
        else:
            dailies += 1
            await received(chi, DAILY, times=dailies)
    await at(clock, local(2024, 8, 15, 8, 0, 5))
    await received(binh, LAST_DAY)
    await received(chi, LAST_DAY)
    assert count(an, LAST_DAYS) == count(an, LAST_DAY) == count(an, DAILY) == 0
    assert count(binh, DAILY) == 0 and count(chi, DAILY) == 13

    # 16/8: round 1 closed; the organisers confirm the qualifiers in the chat.
    await at(clock, local(2024, 8, 16, 9, 0))
    proposal = await say(admin, "/vongloai", "DANH SÁCH THÍ SINH VÀO VÒNG 2 (đề xuất)")
    assert "1. Nguyễn Văn An" in proposal.text
    await admin.press("✅ Xác nhận 1 thí sinh (theo quy tắc)", message_id=proposal.message_id)
    await admin.wait_for(has("Đã xác nhận danh sách"))
    invite = await received(an, INVITE)
    assert VENUE in invite.text and "05/09/2024" in invite.text
    final = await received(binh, FINAL)
    assert "12/20" in final.text
    assert count(chi, FINAL) == 0  # took no part: no final result

    # The second restart, then the round-2 reminders to the qualifier only.
    await campaign_bot.restart()
    opens = rules.round2.round.window.opens
    await at(clock, opens - timedelta(days=1) + timedelta(seconds=5))
    day_before = await received(an, DAY_BEFORE)
    assert VENUE in day_before.text
    await at(clock, opens - timedelta(hours=1) + timedelta(seconds=5))
    await received(an, HOUR_BEFORE)
    assert count(binh, DAY_BEFORE) == count(chi, HOUR_BEFORE) == 0

    # 5/9 at the hall: the code, round 2, the result.
    await at(clock, opens + timedelta(minutes=1))
    await say(admin, "/mavong2 HOITRUONG", "Đã đặt mã phòng thi vòng 2")
    await say(binh, "/vong2", "không có tên trong danh sách thí sinh thi vòng 2")
    ready = await say(an, "/vong2 hoitruong", "Mã phòng thi đúng")
    await an.press("▶️ Bắt đầu làm bài", message_id=ready.message_id)
    await an.wait_for(has("Vòng 2 · Lần thi 1/1 · Câu 1/20"))
    await at(clock, opens + timedelta(minutes=1 + rules.round2.round.minutes, seconds=5))
    await received(an, "Đã hết thời gian làm bài")

    # September: the prizes, confirmed and announced.
    await at(clock, rules.round2.round.window.closes + timedelta(minutes=1))
    preview = await say(admin, "/giaithuong", "GIẢI THƯỞNG (đề xuất")
    await admin.press("✅ Xác nhận 1 giải", message_id=preview.message_id)
    await admin.wait_for(has("Đã xác nhận 1 giải"))
    await received(an, "Chúc mừng! Bạn đạt Giải Nhất")

    # Across the whole campaign and both restarts, each reminder reached each person once.
    for fragment in (LAUNCH, OPENING):
        assert [count(u, fragment) for u in everyone] == [1, 1, 1], fragment
    assert (count(binh, LAST_DAYS), count(binh, LAST_DAY), count(chi, LAST_DAY)) == (1, 1, 1)
    assert (count(an, INVITE), count(binh, FINAL)) == (1, 1)
    assert (count(an, DAY_BEFORE), count(an, HOUR_BEFORE)) == (1, 1)
    assert count(chi, DAILY) == 13
