"""Round 2 on Zalo end to end, through the fake Zalo Bot API: an organiser on Zalo confirms
the qualifiers and sets the session code; the qualifier is invited on Zalo, a wrong code is
refused and rate-limited, a non-qualifier is refused with the service's message; the
qualifier types the code, starts round 2 with a typed number and answers card by card with
letters (time left in each card, doubled replies refused), and the deadline, passing while
the bot is down, still produces the result."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta

import pytest

from contest.clock import ManualClock
from contest.model import Account, Group
from contest.registration import normalize_phone
from contest.rules import ContestRules
from contest.services import ContestService
from fakes.zalo import FakeZaloApi, FakeZaloUser, ZaloMessage
from tests.test_console_stats import take_exam
from tests.test_zalo_e2e import (
    ZaloRunner,
    answer_all,
    answered,
    attempts_of,
    has,
    pick,
    position_of,
    say,
    seeded_url,
)

ADMIN = "z-admin"


@pytest.fixture
def rules(rules: ContestRules) -> ContestRules:
    """One goes on to round 2."""
    return replace(rules, round2=replace(rules.round2, qualifiers=1))


@pytest.fixture
async def zalo_api() -> AsyncIterator[FakeZaloApi]:
    async with FakeZaloApi() as api:
        yield api


@pytest.fixture
async def db_url(database_url: str, rules: ContestRules, clock: ManualClock) -> str:
    return await seeded_url(database_url, rules, clock)


@pytest.fixture
async def zbot(
    zalo_api: FakeZaloApi, rules: ContestRules, clock: ManualClock, db_url: str
) -> AsyncIterator[ZaloRunner]:
    runner = ZaloRunner(zalo_api, rules, clock, db_url, zalo_admin_ids=ADMIN)
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


async def add_zalo_person(service: ContestService, user_id: str, name: str, n: int) -> Account:
    """A person registered with a Zalo account (a citizen of Cát Linh)."""
    account = Account.zalo(user_id)
    async with service.uow() as uow:
        ward = await uow.units.by_code("P-CATLINH")
        assert ward is not None
        await uow.persons.add(
            account=account,
            full_name=name,
            birth_date=date(1990, 1, 1),
            phone=normalize_phone(f"09350{n:05d}"),
            group=Group.CITIZEN,
            unit_id=None,
            position=None,
            ward_id=ward.id,
            consent_at=service.clock.now(),
            registered_at=service.clock.now(),
        )
        await uow.commit()
    return account


async def received(user: FakeZaloUser, fragment: str, timeout: float = 8.0) -> ZaloMessage:
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


async def qualify_on_zalo(
    zbot: ZaloRunner, zalo_api: FakeZaloApi, clock: ManualClock, rules: ContestRules
) -> tuple[FakeZaloUser, FakeZaloUser, FakeZaloUser]:
    """Two Zalo contestants sit round 1; the organiser confirms the best one on Zalo."""
    assert zbot.process is not None
    service = zbot.process.service
    best = await add_zalo_person(service, "z-best", "Nguyễn Giỏi Nhất", 1)
    other = await add_zalo_person(service, "z-other", "Trần Thứ Hai", 2)
    await take_exam(service, clock, best, 20)
    await take_exam(service, clock, other, 15)
    admin = zalo_api.user(ADMIN, "Trưởng ban")
    winner = zalo_api.user("z-best", "Giỏi")
    runner_up = zalo_api.user("z-other", "Hai")

    clock.set(rules.round1.window.closes + timedelta(hours=8))  # 08:00, out of the quiet hours
    proposal = await say(admin, "/vongloai", "DANH SÁCH THÍ SINH VÀO VÒNG 2 (đề xuất)")
    assert "1. Nguyễn Giỏi Nhất" in proposal.text and "Trần Thứ Hai" not in proposal.text
    await say(winner, "/vongloai", "chỉ dành cho Ban Tổ chức")  # a contestant is refused
    await pick(admin, proposal, "Xác nhận 1 thí sinh", "Đã xác nhận danh sách")
    await received(winner, "Bạn có tên trong danh sách thí sinh thi vòng 2")
    await received(runner_up, "KẾT QUẢ CHUNG CUỘC VÒNG 1")
    return admin, winner, runner_up


async def test_round2_with_its_code_on_zalo(
    zbot: ZaloRunner, zalo_api: FakeZaloApi, clock: ManualClock, rules: ContestRules
):
    admin, winner, runner_up = await qualify_on_zalo(zbot, zalo_api, clock, rules)
    r2 = rules.round2.round

    clock.set(r2.window.opens + timedelta(minutes=1))
    await say(winner, "vong2", "chưa mở phòng thi")
    await say(admin, "/mavong2 DD2024", "Đã đặt mã phòng thi vòng 2")
    # A non-qualifier is refused, with or without the right code.
    await say(runner_up, "vong2", "không có tên trong danh sách thí sinh thi vòng 2")
    await say(runner_up, "/vong2 DD2024", "không có tên trong danh sách thí sinh thi vòng 2")
    assert await attempts_of(zbot.engine, Account.zalo("z-other")) != []  # round 1's only
    assert all(r.round == 1 for r in await attempts_of(zbot.engine, Account.zalo("z-other")))

    # Wrong codes: refused, counted, then rate-limited (even the right code).
    asked = await say(winner, "vong2", "Vui lòng gõ mã phòng thi do Ban Tổ chức công bố")
    assert "1. ✖️ Thôi" in asked.text
    for left in (4, 3, 2, 1):
        await say(winner, "SAI999", f"Bạn còn {left} lần nhập thử")
    await say(winner, "SAI999", "nhập sai quá số lần cho phép")
    await say(winner, "/vong2 DD2024", "Bạn đã nhập sai mã phòng thi 5 lần")
    assert [r.round for r in await attempts_of(zbot.engine, Account.zalo("z-best"))] == [1]

    # After the wait, the right code (typed after vong2): the start is a numbered choice.
    clock.advance(minutes=10)
    await say(winner, "vong2", "Vui lòng gõ mã phòng thi")
    ready = await say(winner, "dd2024", "Mã phòng thi đúng")
    assert "gõ số của mục “Bắt đầu làm bài”" in ready.text  # no buttons on Zalo
    card = await pick(winner, ready, "Bắt đầu làm bài", "Câu 1/20")
    assert "Vòng 2, lần thi 1/1" in card.text and "⏱ Còn lại 20:00" in card.text
    rows = await attempts_of(zbot.engine, Account.zalo("z-best"))
    assert [r.round for r in rows] == [1, 2]
    attempt = rows[1].id

    # Letters answer the question most recently sent; a doubled reply counts once.
    await winner.send_text("a")
    await winner.send_text("b")
    await winner.wait_for(has("không được tính cho câu 2"))
    assert await answered(zbot.engine, attempt) == [(0, 0)]
    await say(winner, "xin chào", "Vui lòng trả lời câu 2")
    clock.advance(minutes=3)
    # "thi" (and "vong2") in the hall resume round 2's card, with the time left.
    resumed = await say(winner, "thi", "Câu 2/20")
    assert "Vòng 2" in resumed.text and "⏱ Còn lại 17:00" in resumed.text
    await say(winner, "vong2", "Bạn đang làm dở bài thi vòng 2")
    card = await answer_all(zbot.engine, winner, resumed, attempt, [True, True])
    assert position_of(card) == 3
    hall = await say(admin, "/phongthi", "PHÒNG THI VÒNG 2")
    assert "Nguyễn Giỏi Nhất — ✍️ đang làm, còn" in hall.text

    # The deadline passes while the bot is down: the result comes once it is back.
    await zbot.stop()
    clock.advance(minutes=r2.minutes)
    mark = winner.mark()
    await zbot.start()
    result = await winner.wait_for(has("Đã hết thời gian làm bài"), since=mark, timeout=8)
    rows = await attempts_of(zbot.engine, Account.zalo("z-best"))
    assert rows[1].status == "expired" and rows[1].correct_count in (2, 3)  # "a" at random
    assert f"{rows[1].correct_count}/20" in result.text
    assert len([m for m in winner.bot_messages() if "Đã hết thời gian" in m.text]) == 1
    # One attempt per qualifier: nothing more to start, a letter answers nothing.
    await say(winner, "vong2", "Bạn đã làm bài thi vòng 2")
    await say(winner, "a", "Đã hết giờ làm bài")
    assert len(await answered(zbot.engine, attempt)) == 3
