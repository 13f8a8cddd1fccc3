"""Nothing acknowledged is dropped: results through a Bot API outage, results of attempts
finished by the last answer, presses while Telegram hiccups, and a fast hand-over of the
scheduler lease after a crash."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import runtime
from contest.clock import ManualClock
from contest.model import Channel
from contest.services import INLINE_RESULT_GRACE
from fakes.telegram import FakeBotApi, FakeMessage, FakeUser
from scheduler.deadlines import scheduler_lease
from scheduler.lease import holder_is_dead
from storage import leases
from storage import models as m
from storage.db import create_engine
from tests.conftest import BotRunner, has, pg_engine, register_civil_servant, say
from tests.test_e2e_exam import answer_questions, attempt_rows, engine_of, open_exam
from tests.test_sqlite_busy import LockHolder

LEASE = scheduler_lease([Channel.TELEGRAM])  # the lease of a Telegram-only bot


async def _exam_card(bot: BotRunner, api: FakeBotApi, uid: int, phone: str) -> FakeUser:
    user = api.user(uid)
    await register_civil_servant(user, phone=phone)
    await open_exam(user)
    return user


async def _outbox(engine: AsyncEngine) -> list[m.OutboxRow]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(m.OutboxRow).order_by(m.OutboxRow.id))
        return list(rows.all())  # type: ignore[arg-type]


def _results_sent(api: FakeBotApi, user: FakeUser) -> list[FakeMessage]:
    return [msg for msg in user.bot_messages() if "Đã hết thời gian" in msg.text]


async def test_results_survive_a_long_bot_api_outage(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    """Telegram answers 500 for 7 minutes: the deadline results are tried again and again
    (never given up, never marked sent), then delivered once when it comes back."""
    users = [await _exam_card(bot, fake_api, 5100 + i, f"092100000{i}") for i in range(3)]
    for method in ("sendMessage", "editMessageText"):
        fake_api.inject_error(method, 500, times=None)
    clock.advance(minutes=21)  # every attempt runs out while Telegram is down
    engine = engine_of(bot)
    for _ in range(42):  # seven minutes of the contest's clock, ten seconds at a time
        await asyncio.sleep(0.12)
        clock.advance(seconds=10)
    await asyncio.sleep(0.3)
    rows = await _outbox(engine)
    assert len(rows) == 3
    assert all(r.sent_at is None and r.outcome is None for r in rows)
    # The old policy gave up (and marked the row sent) at the 5th try.
    assert all(r.tries >= 5 for r in rows), [r.tries for r in rows]
    assert all(r.last_error and "NetworkError" in r.last_error for r in rows)
    assert not any(_results_sent(fake_api, u) for u in users)

    fake_api.clear_injections()  # Telegram is back
    for _ in range(20):  # past the longest back-off (a try in flight just now backs off too)
        clock.advance(minutes=5)
        await asyncio.sleep(0.4)
        if all(_results_sent(fake_api, u) for u in users):
            break
    for _ in range(50):
        rows = await _outbox(engine)
        if all(r.sent_at is not None for r in rows):
            break
        await asyncio.sleep(0.05)
    assert [r.outcome for r in rows] == ["sent"] * 3
    clock.advance(minutes=30)
    await asyncio.sleep(0.5)
    assert [len(_results_sent(fake_api, u)) for u in users] == [1, 1, 1]


async def test_a_blocked_person_ends_the_notification_with_the_reason(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    user = await _exam_card(bot, fake_api, 5110, "0921000010")
    user.block()
    clock.advance(minutes=21)
    engine = engine_of(bot)
    for _ in range(100):
        rows = await _outbox(engine)
        if rows and rows[0].sent_at is not None:
            break
        await asyncio.sleep(0.05)
    [row] = rows
    assert row.outcome == "blocked"
    assert row.last_error is not None and "blocked" in row.last_error
    assert row.tries == 1  # a final answer is not tried again


async def _finish_attempt(
    bot: BotRunner, user: FakeUser, uid: int, *, last_edit_fails: bool, api: FakeBotApi
) -> FakeMessage:
    """Answer 19 questions, then the 20th (whose reply may be made to fail)."""
    card = await user.wait_for(has("Câu 1/20"))
    attempt_id = (await attempt_rows(engine_of(bot), uid))[0].id
    message = await answer_questions(bot, user, card, attempt_id, [True] * 19)
    if last_edit_fails:
        api.inject_error("editMessageText", 500, times=None)
    query = await user.press("A", message_id=card.message_id)
    await user.wait_callback_answer(query)
    return message


async def test_result_of_the_last_answer_reaches_the_person_when_the_reply_is_lost(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    """The 20th answer finishes the attempt, but its reply never reaches the person (here:
    Telegram fails the edit; a crash right after the commit is the same): the result
    waits in the outbox, in the transaction that finished the attempt, and goes out."""
    user = await _exam_card(bot, fake_api, 5120, "0921000020")
    await _finish_attempt(bot, user, 5120, last_edit_fails=True, api=fake_api)
    engine = engine_of(bot)
    [row] = await _outbox(engine)
    assert row.kind == "attempt_result" and row.sent_at is None
    await bot.restart()  # and the process goes away meanwhile
    fake_api.clear_injections()
    await asyncio.sleep(0.5)
    assert not [m for m in user.bot_messages() if "hoàn thành bài thi" in m.text]
    clock.advance(INLINE_RESULT_GRACE + timedelta(seconds=1))
    result = await user.wait_for_new_message(timeout=8, predicate=has("hoàn thành bài thi"))
    assert "Lần thi 1" in result.text
    for _ in range(50):
        [row] = await _outbox(engine_of(bot))
        if row.sent_at is not None:
            break
        await asyncio.sleep(0.05)
    assert row.outcome == "sent"


async def test_result_shown_in_the_reply_is_sent_once(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    user = await _exam_card(bot, fake_api, 5130, "0921000030")
    await _finish_attempt(bot, user, 5130, last_edit_fails=False, api=fake_api)
    await user.wait_for(has("hoàn thành bài thi"))
    engine = engine_of(bot)
    for _ in range(50):
        [row] = await _outbox(engine)
        if row.sent_at is not None:
            break
        await asyncio.sleep(0.05)
    assert row.outcome == "inline"
    sent_before = len(fake_api.calls_of("sendMessage"))
    clock.advance(INLINE_RESULT_GRACE * 3)
    await asyncio.sleep(0.6)
    assert len(fake_api.calls_of("sendMessage")) == sent_before


async def test_a_stalled_callback_answer_does_not_hold_back_the_card(
    bot: BotRunner, fake_api: FakeBotApi
):
    user = await _exam_card(bot, fake_api, 5140, "0921000040")
    card = await user.wait_for(has("Câu 1/20"))
    fake_api.inject_delay("answerCallbackQuery", 4.0, after=True)
    started = time.monotonic()
    await user.press("A", message_id=card.message_id)
    await user.wait_for(lambda msg: msg.message_id == card.message_id and "Câu 2/20" in msg.text)
    assert time.monotonic() - started < 2.0


async def test_a_failing_callback_answer_still_edits_the_card(bot: BotRunner, fake_api: FakeBotApi):
    user = await _exam_card(bot, fake_api, 5150, "0921000050")
    card = await user.wait_for(has("Câu 1/20"))
    fake_api.inject_error("answerCallbackQuery", 502)
    await user.press("B", message_id=card.message_id)
    await user.wait_for(lambda msg: msg.message_id == card.message_id and "Câu 2/20" in msg.text)


async def test_a_short_429_on_the_press_path_is_tried_once_more(
    bot: BotRunner, fake_api: FakeBotApi
):
    user = await _exam_card(bot, fake_api, 5160, "0921000060")
    card = await user.wait_for(has("Câu 1/20"))
    fake_api.inject_error("editMessageText", 429, retry_after=1)
    fake_api.inject_error("answerCallbackQuery", 429, retry_after=1)
    query = await user.press("C", message_id=card.message_id)
    await user.wait_for(
        lambda msg: msg.message_id == card.message_id and "Câu 2/20" in msg.text, timeout=6
    )
    await user.wait_callback_answer(query, timeout=6)
    edits = [c.status for c in fake_api.calls_of("editMessageText")]
    assert edits[-2:] == [429, 200]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_holder_is_dead_only_for_a_gone_process_of_this_host():
    host = socket.gethostname()
    assert holder_is_dead(f"{host}:{_dead_pid()}:abc123")
    assert not holder_is_dead(f"{host}:{__import__('os').getpid() - 0}:abc123")  # ourselves
    assert not holder_is_dead(f"{host}:1:abc123")  # init: alive, and never ours
    assert not holder_is_dead(f"another-host-{host}:{_dead_pid()}:abc123")
    assert not holder_is_dead("garbage")


async def test_a_restarted_process_takes_its_dead_predecessors_lease_at_once(
    fake_api: FakeBotApi,
    rules,
    clock: ManualClock,
    seeded: AsyncEngine,
    database_url: str,
):
    """kill -9 and restart: the lease of the dead process still runs for 45 s, but it was
    on this host and its process is gone, so the new process takes over at start-up and
    closes the overdue attempts now, not 45 s late."""
    dead = f"{socket.gethostname()}:{_dead_pid()}:deadbe"
    now = datetime.now(UTC)
    assert await leases.try_acquire(seeded, LEASE, dead, now, 45.0)
    runner = BotRunner(fake_api, rules, clock, lambda: pg_engine(database_url))
    await runner.start()
    try:
        holder = await leases.holder_of(runtime(runner.app).engine, LEASE)
        assert holder is not None and holder[0] == runtime(runner.app).lease.holder
        user = fake_api.user(5170)
        await register_civil_servant(user, phone="0921000070")
        intro = await say(user, "/thi", "Bắt đầu")
        await user.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
        await user.wait_for(has("Câu 1/20"))
        clock.advance(minutes=21)
        await user.wait_for_new_message(timeout=3, predicate=has("Đã hết thời gian"))
    finally:
        await runner.stop()


async def test_a_live_holder_on_this_host_keeps_its_lease(
    fake_api: FakeBotApi,
    rules,
    clock: ManualClock,
    seeded: AsyncEngine,
    database_url: str,
):
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        other = f"{socket.gethostname()}:{alive.pid}:a1b2c3"
        assert await leases.try_acquire(seeded, LEASE, other, datetime.now(UTC), 45.0)
        runner = BotRunner(fake_api, rules, clock, lambda: pg_engine(database_url))
        await runner.start()
        try:
            holder = await leases.holder_of(runtime(runner.app).engine, LEASE)
            assert holder is not None and holder[0] == other
            assert not runtime(runner.app).lease.holding
        finally:
            await runner.stop()
    finally:
        alive.kill()
        alive.wait()


async def test_a_press_while_another_process_holds_the_database_too_long_says_busy(
    fake_api: FakeBotApi, rules, clock: ManualClock, seeded: AsyncEngine, database_url: str
):
    """SQLite: another process keeps the write lock beyond the bot's bound; the press fails
    with «Hệ thống đang bận» (not the generic error) and nothing is recorded; pressed
    again afterwards, it goes through."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's database lock; PostgreSQL locks rows")
    path = make_url(database_url).database
    assert path is not None
    runner = BotRunner(
        fake_api, rules, clock, lambda: create_engine(database_url, sqlite_busy_wait=0.5)
    )
    await runner.start()
    try:
        user = await _exam_card(runner, fake_api, 5180, "0921000080")
        card = await user.wait_for(has("Câu 1/20"))
        async with LockHolder(Path(path), 2.0) as holder:
            query = await user.press("A", message_id=card.message_id)
            answer = await user.wait_callback_answer(query, timeout=5)
            assert answer.text is not None and "bận" in answer.text
            await holder.released()
        rows = await attempt_rows(engine_of(runner), 5180)
        async with engine_of(runner).connect() as conn:
            answered = (
                await conn.execute(
                    select(m.AttemptItemRow.position).where(
                        m.AttemptItemRow.attempt_id == rows[0].id,
                        m.AttemptItemRow.choice.is_not(None),
                    )
                )
            ).all()
        assert answered == []
        await user.press("A", message_id=card.message_id)
        await user.wait_for(
            lambda msg: msg.message_id == card.message_id and "Câu 2/20" in msg.text
        )
    finally:
        await runner.stop()
