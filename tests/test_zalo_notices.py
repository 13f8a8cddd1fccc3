"""What the bot sends on its own reaches Zalo: the 5- and 1-minute warnings of an attempt, a
campaign reminder, an organiser's broadcast (/guitin, typed on Zalo), each through the
outbox to the channel the person used last; /gopy on Zalo; linking with the code shown on
Zalo and typed on Telegram."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import build_application, runtime, start, stop
from bot.settings import Settings
from contest.clock import ManualClock
from contest.model import Account
from contest.rules import LOCAL_TZ, ContestRules
from fakes.telegram import FakeBotApi, FakeUser
from fakes.zalo import FakeZaloApi, FakeZaloUser
from storage import models as m
from tests.conftest import has as has_tg
from tests.conftest import say as tg_say
from tests.test_zalo_e2e import (
    ZaloRunner,
    attempts_of,
    open_exam,
    person_of,
    pick,
    say,
    seeded_url,
)
from tests.test_zalo_round2 import add_zalo_person

ADMIN = "z-admin"


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=LOCAL_TZ)  # type: ignore[misc]


def count(user: FakeZaloUser | FakeUser, fragment: str) -> int:
    return sum(1 for msg in user.bot_messages() if fragment in msg.text)


async def received(user: FakeZaloUser | FakeUser, fragment: str, n: int = 1) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 8.0
    while count(user, fragment) < n:
        if loop.time() > deadline:
            raise AssertionError(f"{user.id} got no {fragment!r}:\n{user.transcript()}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def zalo_api() -> AsyncIterator[FakeZaloApi]:
    async with FakeZaloApi() as api:
        yield api


@pytest.fixture
async def zbot(
    zalo_api: FakeZaloApi, rules: ContestRules, clock: ManualClock, database_url: str
) -> AsyncIterator[ZaloRunner]:
    runner = ZaloRunner(zalo_api, rules, clock, await seeded_url(database_url, rules, clock))
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


async def test_warnings_then_feedback_on_zalo(
    zbot: ZaloRunner, zalo_api: FakeZaloApi, clock: ManualClock
):
    assert zbot.process is not None
    account = await add_zalo_person(zbot.process.service, "z-warn", "Đỗ Cảnh Báo", 11)
    user = zalo_api.user("z-warn", "Báo")
    await open_exam(user)
    attempt = (await attempts_of(zbot.engine, account))[0].id

    clock.advance(minutes=15, seconds=5)
    await received(user, "Bài thi của bạn còn khoảng 5 phút")
    clock.advance(minutes=4)
    await received(user, "Bài thi của bạn còn khoảng 1 phút")
    # After a warning, a letter still answers the question most recently sent.
    await say(user, "c", "Câu 2/20")
    clock.advance(minutes=1)
    await received(user, "Đã hết thời gian làm bài")
    assert count(user, "còn khoảng 5 phút") == 1 and count(user, "còn khoảng 1 phút") == 1

    # /gopy, typed without the slash: the text asked for, then kept.
    asked = await say(user, "gopy", "Vui lòng gõ nội dung góp ý")
    assert "1. " in asked.text  # the cancel choice, numbered
    sent = await say(user, "Câu 5 có hai đáp án đúng: A và C", "Ban Tổ chức đã nhận góp ý")
    assert "#" in sent.text
    async with zbot.engine.connect() as conn:
        rows = (await conn.execute(select(m.FeedbackRow))).all()
    assert len(rows) == 1 and rows[0].person_id == await person_of(zbot.engine, account)
    assert "hai đáp án đúng" in rows[0].text
    # The answer was never taken for an exam answer (the attempt is over anyway).
    assert attempt == (await attempts_of(zbot.engine, account))[0].id


# ------------------------------------------------------------------ both channels


@pytest.fixture
async def both(
    fake_api: FakeBotApi,
    zalo_api: FakeZaloApi,
    rules: ContestRules,
    clock: ManualClock,
    database_url: str,
) -> AsyncIterator[Any]:
    clock.set(local(2024, 7, 14, 10, 0))  # the day before the campaign starts
    url = await seeded_url(database_url, rules, clock)
    settings = Settings(
        bot_token=fake_api.token,
        bot_api_url=fake_api.base_url,
        zalo_token=zalo_api.token,
        zalo_api_url=zalo_api.base_url,
        zalo_admin_ids=ADMIN,
        database_url=url,
        sweep_seconds=0.1,
        poll_timeout=1,
        zalo_send_rate=1000.0,
        zalo_chat_send_interval=0.0,
        _env_file=None,
    )
    app = build_application(settings, rules, clock=clock, zalo=True)
    await start(app, poll_timeout=1)
    try:
        yield app
    finally:
        await stop(app)


async def broadcast(admin: FakeZaloUser, text: str) -> None:
    """/guitin on Zalo to everyone registered, confirmed."""
    segments = await say(admin, "/guitin", "Chọn nhóm người nhận")
    await pick(admin, segments, "Tất cả thí sinh đã đăng ký", "Bước 2/3")
    preview = await say(admin, text, "XEM TRƯỚC")
    await pick(admin, preview, "Xác nhận gửi", "Đã xác nhận tin nhắn")


async def test_link_from_zalo_then_notices_follow_the_channel_used_last(
    both: Any,
    fake_api: FakeBotApi,
    zalo_api: FakeZaloApi,
    clock: ManualClock,
    rules: ContestRules,
):
    service = runtime(both).service
    await add_zalo_person(service, "z-only", "Vũ Chỉ Zalo", 21)
    await add_zalo_person(service, "z-both", "Hà Hai Kênh", 22)
    zonly = zalo_api.user("z-only", "Zalo")
    zboth = zalo_api.user("z-both", "Hà")
    tboth = fake_api.user(8951, first_name="Hà")
    admin = zalo_api.user(ADMIN, "Trưởng ban")

    # The code shown on Zalo, typed on Telegram.
    await tg_say(tboth, "/lienket", "Zalo")  # not registered on Telegram: how to link
    shown = await say(zboth, "lienket", "Mã liên kết của bạn")
    found = re.search(r"Mã liên kết của bạn: (\d{6})", shown.text)
    assert found is not None
    await tg_say(tboth, "/lienket 000000", "")  # a wrong code links nothing
    await tg_say(tboth, f"/lienket {found.group(1)}", "Đã liên kết tài khoản này")
    await tg_say(tboth, f"/lienket {found.group(1)}", "")  # used once only
    person = await service.registration.profile(Account.telegram(8951))
    assert person is not None and person.person.full_name == "Hà Hai Kênh"

    # A campaign reminder reaches the Zalo-only person on Zalo.
    clock.set(local(2024, 7, 15, 7, 0, 5))
    await received(zonly, "đã được phát động")

    # Round 1 opens: «Vào thi» under the announcement, chosen by its number, leads to the exam.
    clock.set(local(2024, 8, 1, 7, 0, 5))
    await received(zonly, "Vòng 1 đã mở")
    # The notice's choices are remembered once it is sent: a person reads it first.
    engine = runtime(both).engine
    loop = asyncio.get_running_loop()
    until = loop.time() + 5
    while True:
        async with engine.connect() as conn:
            state = await conn.scalar(
                select(m.DialogueRow.data).where(m.DialogueRow.external_id == "z-only")
            )
        if state is not None and "i:exam" in state:
            break
        assert loop.time() < until, state
        await asyncio.sleep(0.05)
    await say(zonly, "1", "gõ 1 để bắt đầu làm bài")

    # The linked person takes an attempt on Zalo: a broadcast then goes to Zalo only.
    clock.set(local(2024, 8, 2, 9, 0))
    await open_exam(zboth)
    await broadcast(admin, "Nhắc thi trên Zalo số 1")
    await received(zboth, "Nhắc thi trên Zalo số 1")
    await received(zonly, "Nhắc thi trên Zalo số 1")
    await asyncio.sleep(0.5)
    assert count(tboth, "Nhắc thi trên Zalo số 1") == 0
    # The attempt's result goes to Zalo, where it was taken.
    clock.advance(minutes=21)
    await received(zboth, "Đã hết thời gian làm bài")
    # The second attempt is taken on Telegram: the next broadcast goes to Telegram only.
    intro = await tg_say(tboth, "/thi", "Bắt đầu")
    await tboth.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    await tboth.wait_for(has_tg("Câu 1/20"))
    await broadcast(admin, "Nhắc thi số 2")
    await received(tboth, "Nhắc thi số 2")
    await received(zonly, "Nhắc thi số 2")
    await asyncio.sleep(0.5)
    assert count(zboth, "Nhắc thi số 2") == 0
    assert count(tboth, "Đã hết thời gian làm bài") == 0
