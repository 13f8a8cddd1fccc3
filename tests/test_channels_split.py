"""Each channel in a process of its own (``run --channel telegram`` and ``run --channel
zalo`` on one database): each process holds the scheduler lease of its channel and claims
only the notifications it can deliver, so a Zalo contestant's result is never taken, and
dropped, by the Telegram process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from contest.clock import ManualClock
from contest.model import Account
from contest.rules import ContestRules
from fakes.telegram import FakeBotApi
from fakes.zalo import FakeZaloApi
from storage import models as m
from storage.db import create_engine
from tests.conftest import BotRunner, has, register_civil_servant, say
from tests.test_zalo_e2e import ZaloRunner, seeded_url
from tests.test_zalo_round2 import add_zalo_person


@pytest.fixture
async def two_processes(
    fake_api: FakeBotApi, rules: ContestRules, clock: ManualClock, database_url: str
) -> AsyncIterator[tuple[BotRunner, ZaloRunner, FakeZaloApi]]:
    url = await seeded_url(database_url, rules, clock)
    clock.set(rules.round1.window.opens + timedelta(hours=9))
    telegram = BotRunner(fake_api, rules, clock, lambda: create_engine(url))
    await telegram.start()  # first: it would have held the one lease of old
    async with FakeZaloApi() as zalo_api:
        zalo = ZaloRunner(zalo_api, rules, clock, url)
        await zalo.start()
        try:
            yield telegram, zalo, zalo_api
        finally:
            await zalo.stop()
            await telegram.stop()


async def test_each_channel_s_process_delivers_its_own_results(
    two_processes: tuple[BotRunner, ZaloRunner, FakeZaloApi],
    fake_api: FakeBotApi,
    clock: ManualClock,
    rules: ContestRules,
):
    telegram, zalo, zalo_api = two_processes
    service = telegram.service
    anh = fake_api.user(8701)
    await register_civil_servant(anh, phone="0940000701")
    await add_zalo_person(service, "z-split", "Lý Thị Zalo", 7)
    zuser = zalo_api.user("z-split", "Zalo")

    intro = await say(anh, "/thi", "Bắt đầu")
    await anh.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    await anh.wait_for(has("Câu 1/20"))
    await service.exams.start_attempt(Account.zalo("z-split"))
    clock.advance(minutes=rules.round1.minutes + 1)  # both run out

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not any("Đã hết thời gian làm bài" in msg.text for msg in zuser.bot_messages()):
        assert loop.time() < deadline, "the Zalo contestant's result never came"
        await asyncio.sleep(0.1)
    await anh.wait_for(has("Đã hết thời gian làm bài"), since=0)
    # Both rows end as sent (marked in batches, within a second or so), none dropped.
    engine = create_engine(zalo.url)
    try:
        while True:
            async with engine.connect() as conn:
                outcomes = (
                    (
                        await conn.execute(
                            select(m.OutboxRow.outcome).where(m.OutboxRow.kind == "attempt_result")
                        )
                    )
                    .scalars()
                    .all()
                )
            if None not in outcomes or loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    assert outcomes == ["sent", "sent"]
