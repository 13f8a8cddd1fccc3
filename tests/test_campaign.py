"""The campaign's reminders: the schedule from the contest file, the quiet hours, and the
reminders reaching exactly the right people once, through restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.campaign import Audience, Reminder, outside_quiet, schedule
from contest.clock import ManualClock
from contest.rules import LOCAL_TZ, ContestRules, ReminderRules
from fakes.telegram import FakeBotApi, FakeUser
from storage import models as m
from tests.conftest import BotRunner, has, pg_engine, register_citizen, register_civil_servant, say


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LOCAL_TZ)  # type: ignore[misc]


def test_the_schedule_of_the_plan(rules: ContestRules):
    events = {e.key: e for e in schedule(rules)}
    launch = events["launch"]
    # 15/7 00:00 falls in the quiet hours: the launch goes out at 07:00.
    assert launch.at == local(2024, 7, 15, 7, 0)
    assert launch.valid_until == rules.round1.window.opens
    assert (launch.reminder, launch.audience) == (Reminder.LAUNCH, Audience.REGISTERED)
    assert events["round1_open"].at == local(2024, 8, 1, 7, 0)
    # Each day of the window at 19:00 to those without an attempt, but on the days of the
    # other reminders: 3 days before the close (12/8) and the last day (15/8, at 08:00).
    dailies = sorted(k for k in events if k.startswith("daily:"))
    assert dailies[0] == "daily:2024-08-01" and "daily:2024-08-12" not in dailies
    assert "daily:2024-08-15" not in dailies and len(dailies) == 13
    assert events["daily:2024-08-03"].at == local(2024, 8, 3, 19, 0)
    assert events["daily:2024-08-03"].valid_until == local(2024, 8, 4, 0, 0)
    assert events["attempt_left:2024-08-12"].audience is Audience.ATTEMPT_LEFT
    assert events["last_day"].at == local(2024, 8, 15, 8, 0)
    assert events["last_day"].valid_until == rules.round1.window.closes
    r2 = rules.round2.round.window.opens
    assert events["round2_day_before"].at == r2 - timedelta(days=1)
    assert events["round2_hour_before"].at == outside_quiet(
        r2 - timedelta(hours=1), rules.reminders
    )
    assert events["round2_hour_before"].audience is Audience.QUALIFIERS
    # Nothing of round 2 before its date is decided; nothing at all when switched off.
    assert not any(
        k.startswith("round2") for k in (e.key for e in schedule(rules, round2_scheduled=False))
    )
    assert schedule(replace(rules, reminders=ReminderRules(enabled=False))) == []


def test_quiet_hours_span_midnight():
    rules = ReminderRules(quiet_start=time(21, 0), quiet_end=time(7, 0))
    assert outside_quiet(local(2024, 8, 3, 20, 59), rules) == local(2024, 8, 3, 20, 59)
    assert outside_quiet(local(2024, 8, 3, 21, 0), rules) == local(2024, 8, 4, 7, 0)
    assert outside_quiet(local(2024, 8, 4, 3, 30), rules) == local(2024, 8, 4, 7, 0)
    assert outside_quiet(local(2024, 8, 4, 7, 0), rules) == local(2024, 8, 4, 7, 0)
    day = ReminderRules(quiet_start=time(12, 0), quiet_end=time(13, 0))
    assert outside_quiet(local(2024, 8, 4, 12, 30), day) == local(2024, 8, 4, 13, 0)


@pytest.fixture
async def campaign_bot(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    seeded: AsyncEngine,
    database_url: str,
) -> AsyncIterator[BotRunner]:
    clock.set(local(2024, 7, 14, 10, 0))  # the day before the campaign starts
    runner = BotRunner(fake_api, rules, clock, lambda: pg_engine(database_url))
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


def reminders_of(user: FakeUser, fragment: str) -> int:
    return sum(1 for msg in user.bot_messages() if fragment in msg.text)


async def settle(seconds: float = 0.6) -> None:
    await asyncio.sleep(seconds)


async def received(user: FakeUser, fragment: str, count: int = 1, timeout: float = 5.0) -> None:
    """Wait until ``user`` has ``count`` bot messages containing ``fragment``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while reminders_of(user, fragment) < count:
        if loop.time() > deadline:
            raise AssertionError(f"{user.id} got no {fragment!r}:\n{user.transcript()}")
        await asyncio.sleep(0.05)


async def test_reminders_reach_the_right_people_once_and_respect_quiet_hours(
    campaign_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock, rules: ContestRules
):
    an = fake_api.user(8801)
    await register_civil_servant(an, phone="0940000001")
    binh = fake_api.user(8802)
    await register_citizen(binh, phone="0940000002")
    quiet = fake_api.user(8803)
    await register_civil_servant(quiet, phone="0940000003")
    await say(quiet, "/nhacnho", "Đã tắt nhắc nhở")

    clock.set(local(2024, 7, 15, 6, 30))  # the campaign has started, but it is quiet time
    await settle()
    assert reminders_of(an, "đã được phát động") == 0
    clock.set(local(2024, 7, 15, 7, 0, 5))
    await received(an, "đã được phát động")
    await received(binh, "đã được phát động")
    await settle()
    assert reminders_of(quiet, "đã được phát động") == 0

    await campaign_bot.restart()  # nothing goes out twice after a restart
    await settle(1.0)
    assert reminders_of(an, "đã được phát động") == 1

    # Round 1 opens; An takes an attempt; the daily reminder at 19:00 goes to Bình only.
    clock.set(local(2024, 8, 1, 7, 0, 5))
    await received(an, "Vòng 1 đã mở")
    intro = await say(an, "/thi", "Bắt đầu")
    await an.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    await an.wait_for(has("Câu 1/20"))
    clock.set(local(2024, 8, 1, 19, 0, 5))
    await received(binh, "chưa tham gia thi vòng 1")
    await settle()
    assert reminders_of(an, "chưa tham gia thi vòng 1") == 0
    # The reminder was fanned out only for those without an attempt at 19:00.
    async with campaign_bot.app.bot_data["contest_runtime"].engine.connect() as conn:
        keys = (
            (
                await conn.execute(
                    select(m.OutboxRow.key).where(
                        m.OutboxRow.key.like("reminder:daily:2024-08-01:%")
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(keys) == 1

    # The bot is down over the evening of 2/8 and comes back the next morning: the
    # reminder of the 2nd (a day over) is dropped, not sent late.
    await campaign_bot.stop()
    clock.set(local(2024, 8, 3, 8, 0))
    await campaign_bot.start()
    await settle(1.0)
    assert reminders_of(binh, "chưa tham gia thi vòng 1") == 1

    # The switch under a reminder turns them off.
    await binh.press("🔕 Tắt nhắc nhở")
    await binh.wait_for(has("Đã tắt nhắc nhở"))
    clock.set(local(2024, 8, 3, 19, 0, 5))
    await settle()
    assert reminders_of(binh, "chưa tham gia thi vòng 1") == 1


async def test_the_campaign_bench_fans_out_to_the_right_audiences(tmp_path):
    """``python -m bench.campaign`` on a small seed: everyone at the launch and the opening,
    the half without an attempt at the daily reminder (no timing asserted)."""
    from bench import campaign

    figures = await campaign.measure(tmp_path / "bench.db", 300)
    assert figures["people"] == 300
    assert (figures["launch_rows"], figures["opening_rows"]) == (300, 300)
    assert figures["daily_rows"] == 150
    assert figures["queued"] == 750
    assert "rows/s" in campaign.report(figures)
