"""Round 2 end to end through the fake Bot API, on both engines: the organiser confirms the
qualifiers, the qualifier is invited and the other contestant told their final result;
the session code is set, a wrong code is refused and rate-limited, a non-qualifier is
refused; the qualifier takes round 2, whose deadline passes while the bot is down and
still produces the result; the organisers watch the hall; prizes are confirmed, exported
and the winner is told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, time, timedelta
from io import BytesIO

import openpyxl
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.rules import LOCAL_TZ, ContestRules, PrizeRules
from fakes.telegram import FakeBotApi, FakeMessage, FakeUser
from tests.conftest import BotRunner, has, pg_engine, say
from tests.test_console_staff import ADMIN
from tests.test_console_stats import add_person, take_exam


@pytest.fixture
def rules(rules: ContestRules) -> ContestRules:
    """One goes on to round 2, and there is one prize."""
    return replace(
        rules,
        round2=replace(rules.round2, qualifiers=1),
        prizes=PrizeRules(first=1, second=0, third=0, consolation=0),
    )


@pytest.fixture
async def round2_bot(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    seeded: AsyncEngine,
    database_url: str,
) -> AsyncIterator[BotRunner]:
    runner = BotRunner(
        fake_api, rules, clock, lambda: pg_engine(database_url), admin_ids=str(ADMIN)
    )
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


async def received(user: FakeUser, fragment: str, timeout: float = 8.0) -> FakeMessage:
    """A bot message containing ``fragment``, sent at any time (the outbox's)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for message in user.bot_messages():
            if fragment in message.text:
                return message
        if loop.time() > deadline:
            raise AssertionError(f"{user.id} got no {fragment!r}:\n{user.transcript()}")
        await asyncio.sleep(0.05)


async def test_qualify_enter_the_code_take_round2_and_win_a_prize(
    round2_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock, rules: ContestRules
):
    service = round2_bot.service
    best = await add_person(service, 1, "Nguyễn Giỏi Nhất", ward_code="P-CATLINH")
    other = await add_person(service, 2, "Trần Thứ Hai", ward_code="P-CATLINH")
    await take_exam(service, clock, best, 20)
    await take_exam(service, clock, other, 15)
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    winner = fake_api.user(80_001, first_name="Giỏi")
    runner_up = fake_api.user(80_002, first_name="Hai")

    await say(admin, "/vongloai", "Vòng 1 chưa kết thúc")  # not before the close
    clock.set(rules.round1.window.closes + timedelta(minutes=1))
    proposal = await say(admin, "/vongloai", "DANH SÁCH THÍ SINH VÀO VÒNG 2 (đề xuất)")
    assert "1. Nguyễn Giỏi Nhất" in proposal.text and "Trần Thứ Hai" not in proposal.text
    assert "nhiều câu đúng hơn, rồi thời gian làm bài ngắn hơn" in proposal.text
    await winner.send_text("/vongloai")  # a contestant is refused
    await winner.wait_for(has("chỉ dành cho Ban Tổ chức"))
    await admin.press("✅ Xác nhận 1 thí sinh (theo quy tắc)", message_id=proposal.message_id)
    await admin.wait_for(has("Đã xác nhận danh sách"))

    # Confirmed at 00:01, in the quiet hours: the invitations and results wait for 07:00.
    await asyncio.sleep(1.5)
    for user, fragment in ((winner, "danh sách thí sinh thi vòng 2"), (runner_up, "CHUNG CUỘC")):
        assert not [m for m in user.bot_messages() if fragment in m.text]
    clock.set(datetime.combine(clock.now().astimezone(LOCAL_TZ).date(), time(7, 0, 5), LOCAL_TZ))
    invite = await received(winner, "Bạn có tên trong danh sách thí sinh thi vòng 2")
    assert "Thời gian và địa điểm thi vòng 2: sẽ thông báo sau" in invite.text
    assert "05/09/2024" not in invite.text  # the example's placeholder is not decided
    final = await received(runner_up, "KẾT QUẢ CHUNG CUỘC VÒNG 1")
    assert "15/20" in final.text and "Xếp hạng: 2 trên tổng số 2 thí sinh" in final.text
    rules_text = await say(winner, "/thele", "THỂ LỆ")
    assert "thời gian, địa điểm sẽ thông báo sau" in rules_text.text

    # Round 2: the code, a wrong one refused and rate-limited, a non-qualifier refused.
    clock.set(rules.round2.round.window.opens + timedelta(minutes=1))
    await say(winner, "/vong2", "chưa mở phòng thi")
    await say(admin, "/mavong2 DD2024", "Đã đặt mã phòng thi vòng 2")
    await say(runner_up, "/vong2", "không có tên trong danh sách thí sinh thi vòng 2")
    await say(winner, "/vong2", "Vui lòng gõ mã phòng thi do Ban Tổ chức công bố")
    for left in (4, 3, 2, 1):
        await say(winner, "SAI999", f"Bạn còn {left} lần nhập thử")
    await say(winner, "SAI999", "nhập sai quá số lần cho phép")
    await say(winner, "/vong2 DD2024", "Bạn đã nhập sai mã phòng thi 5 lần")
    clock.advance(minutes=10)
    ready = await say(winner, "/vong2 dd2024", "Mã phòng thi đúng")
    await winner.press("▶️ Bắt đầu làm bài", message_id=ready.message_id)
    card = await winner.wait_for(has("Vòng 2 · Lần thi 1/1 · Câu 1/20"))
    await winner.press("A", message_id=card.message_id)
    await winner.wait_for(has("Câu 2/20"))
    hall = await say(admin, "/phongthi", "PHÒNG THI VÒNG 2")
    assert "Nguyễn Giỏi Nhất — ✍️ đang làm, còn" in hall.text

    # The deadline passes while the bot is down: the result comes once it is back.
    await round2_bot.stop()
    clock.advance(minutes=rules.round2.round.minutes + 1)
    await round2_bot.start()
    await received(winner, "Đã hết thời gian làm bài")
    hall = await say(admin, "/phongthi", "PHÒNG THI VÒNG 2")
    assert "Nguyễn Giỏi Nhất — ✅ đã nộp" in hall.text

    # Prizes.
    clock.set(rules.round2.round.window.closes + timedelta(minutes=1))
    preview = await say(admin, "/giaithuong", "GIẢI THƯỞNG (đề xuất")
    assert "Giải Nhất" in preview.text and "Nguyễn Giỏi Nhất" in preview.text
    await admin.press("✅ Xác nhận 1 giải", message_id=preview.message_id)
    done = await admin.wait_for(has("Đã xác nhận 1 giải"))
    prize = await received(winner, "Chúc mừng! Bạn đạt Giải Nhất")
    assert "3.000.000 đồng" in prize.text
    await admin.press("📥 Xuất tệp XLSX", message_id=done.message_id)
    document = await admin.wait_for(lambda m: m.document is not None)
    assert document.document is not None
    sheet = openpyxl.load_workbook(BytesIO(document.document.data)).active
    assert sheet is not None
    assert sheet["C2"].value == "Nguyễn Giỏi Nhất" and sheet["A2"].value == "Giải Nhất"
    assert not [m for m in runner_up.bot_messages() if "Chúc mừng" in m.text]
