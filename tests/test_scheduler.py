"""Send pacing, the scheduler lease, and deadline results under Telegram errors."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.suite import seed_attempts, seed_bank, seed_people
from bot.app import runtime
from contest.clock import ManualClock
from contest.model import Channel
from fakes.telegram import FakeBotApi
from scheduler.deadlines import DELIVERY_CONCURRENCY, scheduler_lease
from scheduler.throttle import SendThrottle
from storage import leases
from storage import models as m
from tests.conftest import BotRunner, has, register_civil_servant, say

LEASE = scheduler_lease([Channel.TELEGRAM])  # the lease of a Telegram-only bot


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def test_throttle_spaces_sends_overall_and_per_chat():
    t = FakeTime()
    throttle = SendThrottle(30.0, 1.0, monotonic=t.monotonic)
    # 60 different chats at 30/s: the last one waits about two seconds.
    delays = [throttle.reserve(chat) for chat in range(60)]
    assert delays[0] == 0.0
    assert abs(delays[30] - 1.0) < 1e-9 and abs(delays[59] - 59 / 30) < 1e-9
    # The same chat three times: one second apart, whatever the overall pace.
    t.now = 10.0
    same = [throttle.reserve(42) for _ in range(3)]
    assert [round(d, 6) for d in same] == [0.0, 1.0, 2.0]


async def test_throttle_pause_holds_everyone_back():
    t = FakeTime()
    throttle = SendThrottle(30.0, 0.0, monotonic=t.monotonic, sleep=t.sleep)
    throttle.pause(5.0)
    await throttle.wait(1)
    await throttle.wait(2)
    assert t.sleeps[0] == 5.0 and abs(t.sleeps[1] - (5.0 + 1 / 30)) < 1e-9


async def test_a_pause_voids_the_slots_booked_before_it():
    t = FakeTime()

    async def sleep_then_429(seconds: float) -> None:
        await t.sleep(seconds)
        if len(t.sleeps) == 1:
            throttle.pause(10.0)  # another send met "retry after 10" meanwhile

    throttle = SendThrottle(1.0, 0.0, monotonic=t.monotonic, sleep=sleep_then_429)
    await throttle.wait(1)  # at once
    await throttle.wait(2)  # booked 1 s ahead, then voided by the pause: waits it out
    assert t.sleeps == [1.0, 10.0]


async def test_lease_is_held_by_one_and_taken_over_when_it_runs_out(engine: AsyncEngine):
    now = datetime(2024, 8, 5, 2, 0, tzinfo=UTC)
    assert await leases.try_acquire(engine, "scheduler", "a", now, 30)
    assert not await leases.try_acquire(engine, "scheduler", "b", now, 30)
    assert await leases.try_acquire(engine, "scheduler", "a", now + timedelta(seconds=20), 30)
    # a stops renewing (it died): b takes over once the lease has run out.
    assert not await leases.try_acquire(engine, "scheduler", "b", now + timedelta(seconds=49), 30)
    assert await leases.try_acquire(engine, "scheduler", "b", now + timedelta(seconds=51), 30)
    holder = await leases.holder_of(engine, "scheduler")
    assert holder is not None and holder[0] == "b"
    # A clean shutdown gives it up at once.
    await leases.release(engine, "scheduler", "b")
    assert await leases.try_acquire(engine, "scheduler", "c", now + timedelta(seconds=52), 30)


async def _open_attempt(bot: BotRunner, api: FakeBotApi, uid: int, phone: str):
    user = api.user(uid)
    await register_civil_servant(user, phone=phone)
    intro = await say(user, "/thi", "Bắt đầu")
    await user.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    await user.wait_for(has("Câu 1/20"))
    return user


async def test_deadline_result_is_sent_despite_a_429(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    user = await _open_attempt(bot, fake_api, 3001, "0920000001")
    fake_api.inject_error("sendMessage", 429, retry_after=1)
    clock.advance(minutes=21)
    result = await user.wait_for_new_message(timeout=8, predicate=has("Đã hết thời gian"))
    assert "0/20" in result.text
    statuses = [c.status for c in fake_api.calls_of("sendMessage")]
    assert 429 in statuses


async def test_blocked_person_does_not_stall_the_outbox(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    blocked = await _open_attempt(bot, fake_api, 3002, "0920000002")
    other = await _open_attempt(bot, fake_api, 3003, "0920000003")
    blocked.block()
    clock.advance(minutes=21)
    await other.wait_for_new_message(timeout=8, predicate=has("Đã hết thời gian"))
    for _ in range(50):  # the row is marked sent just after the message went out
        async with runtime(bot.app).engine.connect() as conn:
            rows = (await conn.execute(select(m.OutboxRow.sent_at, m.OutboxRow.last_error))).all()
        if all(r.sent_at is not None for r in rows):
            break
        await asyncio.sleep(0.05)
    assert len(rows) == 2 and all(r.sent_at is not None for r in rows)
    assert sum(1 for r in rows if r.last_error and "blocked" in r.last_error.lower()) == 1


async def test_a_failing_notification_does_not_hold_back_the_others(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    first = await _open_attempt(bot, fake_api, 3004, "0920000004")
    second = await _open_attempt(bot, fake_api, 3005, "0920000005")
    # The first result to go out meets a server error; the other must not wait for it.
    fake_api.inject_error("sendMessage", 500, times=1)
    clock.advance(minutes=21)
    outcomes = await asyncio.gather(
        *(u.wait_for_new_message(timeout=4, predicate=has("Đã hết")) for u in (first, second)),
        return_exceptions=True,
    )
    # One went out at once; the failed one waits for its retry instead of blocking it.
    assert sum(1 for o in outcomes if not isinstance(o, BaseException)) == 1
    async with runtime(bot.app).engine.connect() as conn:
        rows = (await conn.execute(select(m.OutboxRow.sent_at, m.OutboxRow.tries))).all()
    assert sorted(r.sent_at is not None for r in rows) == [False, True]


async def test_a_warning_that_failed_to_send_is_sent_again(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    user = await _open_attempt(bot, fake_api, 3006, "0920000006")
    before = len(fake_api.calls_of("sendMessage"))
    fake_api.inject_error("sendMessage", 500, times=1)
    clock.advance(minutes=15, seconds=30)  # the 5-minute warning is due; its send fails
    for _ in range(100):
        if fake_api.calls_of("sendMessage")[before:]:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # further sweeps: the claim holds, nothing is sent
    assert [c.status for c in fake_api.calls_of("sendMessage")[before:]] == [500]
    # The warning waits in the outbox; once its claim runs out it goes again.
    clock.advance(seconds=61)
    warning = await user.wait_for_new_message(timeout=8, predicate=has("còn khoảng"))
    assert "phút" in warning.text
    async with runtime(bot.app).engine.connect() as conn:
        rows = (await conn.execute(select(m.OutboxRow.kind, m.OutboxRow.tries))).all()
    assert [(r.kind, r.tries) for r in rows] == [("attempt_warning", 2)]


async def _people_with_attempts(
    engine: AsyncEngine, rules, api: FakeBotApi, count: int, first_uid: int
) -> Callable[[], Awaitable[set[int]]]:
    """``count`` registered people with chats on the fake; the returned call gives each a
    round-1 attempt closed by its deadline, with its result waiting in the outbox (the
    running bot's sweep starts sending at once), and returns their Telegram ids."""
    rng = random.Random(first_uid)
    bank = await seed_bank(engine, rules)
    people = [
        p for p in await seed_people(engine, bank, count, first_uid, rng) if p[1] >= first_uid
    ]
    for _, uid in people:
        api.user(uid)

    async def close() -> set[int]:
        await seed_attempts(engine, bank, people, rng, finished=True)
        return {uid for _, uid in people}

    return close


async def test_results_go_out_at_the_overall_pace_and_presses_do_not_wait_for_them(
    bot: BotRunner, fake_api: FakeBotApi, rules, seeded: AsyncEngine
):
    """60 results closed together (120 messages: the card retired, then the result) go out
    at about 30 messages/s overall and 1/s per chat, so many at once; a person pressing A
    meanwhile gets the answer and the next question at once, not after the burst."""
    user = await _open_attempt(bot, fake_api, 3010, "0920000010")
    close_attempts = await _people_with_attempts(seeded, rules, fake_api, 60, 800_000)
    bulk_uids = await close_attempts()

    def bulk_calls() -> list:
        return [
            c
            for c in fake_api.calls
            if c.method in ("sendMessage", "editMessageText")
            and int(c.params.get("chat_id", 0)) in bulk_uids
        ]

    def results_sent() -> int:
        return sum(1 for c in bulk_calls() if c.method == "sendMessage")

    for _ in range(100):  # the sweep (every 0.1 s here) starts delivering
        if results_sent() >= 5:
            break
        await asyncio.sleep(0.05)
    assert 5 <= results_sent() < 40
    started = time.monotonic()
    await user.press("A")
    card = await user.wait_for(has("Câu 2/20"), timeout=5)
    waited = time.monotonic() - started
    assert waited < 2.0, f"the press waited {waited:.2f} s behind the bulk sends"
    assert "Câu 2/20" in card.text
    assert fake_api.calls_of("answerCallbackQuery")[-1].status == 200
    assert results_sent() < 60  # the burst was still going when the answer came

    for _ in range(200):
        if results_sent() == 60:
            break
        await asyncio.sleep(0.05)
    calls = bulk_calls()
    assert results_sent() == 60 and len(calls) == 120
    times = sorted(c.t for c in calls)
    pace = (len(times) - 1) / (times[-1] - times[0])
    # About 30/s overall: not faster, and far from one result at a time (2 messages/s).
    assert 15 < pace <= 36, f"{pace:.1f} messages/s"
    for uid in bulk_uids:
        retire, result = sorted(c.t for c in calls if int(c.params["chat_id"]) == uid)
        assert result - retire >= 0.8  # one message per second to a chat (booked 1 s apart)


async def test_the_bot_sends_through_one_http_session(bot: BotRunner, fake_api: FakeBotApi):
    """Updates, getUpdates and bulk sends: three pools, one aiohttp session."""
    app = bot.app
    requests = [*app.bot._request, runtime(app).bulk_bot.request]
    sessions = {id(request.session) for request in requests}
    assert len(sessions) == 1 and requests[0].session is not None
    session = requests[0].session
    assert [r.connection_pool_size for r in requests] == [1, 128, DELIVERY_CONCURRENCY]
    await bot.stop()
    assert session.closed


async def test_a_send_whose_claim_ran_out_is_not_sent_twice(
    bot: BotRunner, fake_api: FakeBotApi, rules, seeded: AsyncEngine, clock: ManualClock
):
    """A send can outlive its claim (Telegram asking to wait, a slow answer): the next
    claim then returns the rows still in flight. They must not be started a second time."""
    close_attempts = await _people_with_attempts(seeded, rules, fake_api, 40, 810_000)
    fake_api.inject_delay("editMessageText", 2.0)  # the first card retired is slow
    uids = await close_attempts()

    def results() -> list[int]:
        return [
            int(c.params["chat_id"])
            for c in fake_api.calls_of("sendMessage")
            if int(c.params.get("chat_id", 0)) in uids
        ]

    for _ in range(100):
        if results():
            break
        await asyncio.sleep(0.05)
    clock.advance(seconds=61)  # every claim of the first batch has run out
    for _ in range(200):
        if len(set(results())) == 40:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # any second send would come now
    sent = results()
    assert sorted(sent) == sorted(uids), f"{len(sent)} results for {len(set(sent))} people"


async def test_only_the_lease_holder_sends_results(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    """With several processes the bulk pace holds overall because one process sends: a
    process without the lease closes its own attempts on time but leaves the result in the
    outbox; once it holds the lease, it sends it."""
    from sqlalchemy import update

    user = await _open_attempt(bot, fake_api, 3020, "0920000020")
    rt = runtime(bot.app)
    later = datetime.now(UTC) + timedelta(minutes=10)
    async with rt.engine.begin() as conn:  # another process takes the lease, in one step
        await conn.execute(
            update(m.LeaseRow)
            .where(m.LeaseRow.name == LEASE)
            .values(holder="other-process", expires_at=later)
        )
    for _ in range(100):
        if not rt.lease.holding:
            break
        await asyncio.sleep(0.05)
    assert not rt.lease.holding
    async with rt.engine.connect() as conn:
        attempt_id, deadline = (
            await conn.execute(select(m.AttemptRow.id, m.AttemptRow.deadline_at))
        ).one()
    clock.advance(minutes=21)
    rt.deadlines.arm(attempt_id, deadline)  # its own timer fires: it closes the attempt
    for _ in range(100):
        async with rt.engine.connect() as conn:
            status = (await conn.execute(select(m.AttemptRow.status))).scalar_one()
        if status != "in_progress":
            break
        await asyncio.sleep(0.05)
    assert status == "expired"
    await asyncio.sleep(1.5)  # more than a delivery poll: nothing is sent by this process
    assert not [m_ for m_ in user.bot_messages() if "Đã hết thời gian" in m_.text]
    async with rt.engine.begin() as conn:  # the other process died: its lease runs out
        await conn.execute(
            update(m.LeaseRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    result = await user.wait_for_new_message(timeout=8, predicate=has("Đã hết thời gian"))
    assert rt.lease.holding and "0/20" in result.text


async def test_a_send_in_flight_at_shutdown_is_finished_not_repeated(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    """Stopping the bot while a result is going out lets that send finish and be marked
    sent: after a restart (and its claim's end) the person does not get it twice."""
    user = await _open_attempt(bot, fake_api, 3030, "0920000030")
    fake_api.inject_delay("sendMessage", 1.0, after=True)  # delivered, answered late
    clock.advance(minutes=21)
    await user.wait_for_new_message(timeout=8, predicate=has("Đã hết thời gian"))
    await bot.stop()  # the result's sendMessage is still waiting for its answer
    await bot.start()
    clock.advance(seconds=61)  # any claim left over has run out
    await asyncio.sleep(1.5)  # a sweep and a delivery poll or two
    results = [m_ for m_ in user.bot_messages() if "Đã hết thời gian" in m_.text]
    assert len(results) == 1
    async with runtime(bot.app).engine.connect() as conn:
        rows = (await conn.execute(select(m.OutboxRow.sent_at))).all()
    assert len(rows) == 1 and rows[0].sent_at is not None
