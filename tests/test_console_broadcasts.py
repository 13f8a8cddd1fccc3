"""Broadcasts (/guitin) end to end through the fake Bot API, on SQLite and PostgreSQL: the
segments pick exactly the right people; a broadcast meets 429 and 403 answers, is stopped
mid-way and resumed, and nobody gets it twice; the progress message and the closing
report count right; contestants' attempts are refused and audited; stale and double
confirms change nothing; a person who blocked the bot is skipped until they write again.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.suite import seed_bank, seed_people
from bot.app import runtime
from contest.clock import ManualClock
from contest.model import Account, Role, UnitKind
from contest.ports import Segment, SegmentKind
from contest.rules import ContestRules
from contest.services import ContestService
from contest.usecases.staff import Actor
from fakes.telegram import FakeBotApi, FakeMessage, FakeUser
from storage import models as m
from storage.uow import SqlUnitOfWorkFactory
from tests.conftest import ADMIN, BotRunner, has, register_civil_servant, say

FIRST_UID = 700_000
HEADER = "THÔNG BÁO CỦA BAN TỔ CHỨC CUỘC THI"


async def _people(
    engine: AsyncEngine, rules: ContestRules, api: FakeBotApi, count: int
) -> list[int]:
    """``count`` registered people with chats on the fake; their Telegram ids."""
    rng = random.Random(count)
    bank = await seed_bank(engine, rules)
    people = await seed_people(engine, bank, count, FIRST_UID, rng)
    for _, uid in people:
        api.user(uid, first_name=f"Người {uid}")
    return [uid for _, uid in people]


def _broadcasts_to(user: FakeUser) -> list[FakeMessage]:
    return [msg for msg in user.bot_messages() if HEADER in msg.text]


async def _until(check: Any, timeout: float = 20.0, what: str = "") -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


async def _outbox(bot: BotRunner) -> list[Any]:
    async with runtime(bot.app).engine.connect() as conn:
        rows = await conn.execute(
            select(m.OutboxRow.key, m.OutboxRow.person_id, m.OutboxRow.outcome).order_by(
                m.OutboxRow.id
            )
        )
        return list(rows.all())


async def _audit(bot: BotRunner) -> list[tuple[str, str, str]]:
    async with runtime(bot.app).engine.connect() as conn:
        rows = await conn.execute(
            select(m.AuditRow.actor, m.AuditRow.action, m.AuditRow.outcome).order_by(m.AuditRow.id)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def _compose(admin: FakeUser, segment_label: str, text: str) -> FakeMessage:
    """/guitin, a segment, the message: the preview."""
    await say(admin, "/guitin", "Chọn nhóm người nhận")
    await admin.press(segment_label)
    await admin.wait_for(has("Bước 2/3"))
    return await say(admin, text, "XEM TRƯỚC")


async def test_a_broadcast_survives_429_403_and_a_restart_without_duplicates(
    console_bot: BotRunner, fake_api: FakeBotApi, rules: ContestRules, seeded: AsyncEngine
):
    uids = await _people(seeded, rules, fake_api, 60)
    blocked = [fake_api.user(uid) for uid in uids[:3]]
    for user in blocked:
        user.block()
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    preview = await _compose(
        admin, "👥 Tất cả thí sinh đã đăng ký", "Hạn chót <b>15/8</b> & đừng quên!"
    )
    assert "Sẽ gửi tới 60 người" in preview.text
    # The organiser's words are plain text: the tags show as typed, nothing becomes bold.
    assert "Hạn chót <b>15/8</b> & đừng quên!" in preview.text
    bold = [preview.text[e["offset"] : e["offset"] + e["length"]] for e in preview.entities]
    assert "15/8" not in bold

    fake_api.inject_error("sendMessage", 429, retry_after=1, times=2)
    await admin.press("✅ Xác nhận gửi", message_id=preview.message_id)
    confirmed = await admin.wait_for(has("Đã xác nhận tin nhắn #1"))
    assert "60 người" in confirmed.text and not confirmed.buttons

    def delivered() -> list[int]:
        return [u for u in uids if _broadcasts_to(fake_api.user(u))]

    await _until(
        lambda: any("Đang gửi" in msg.text for msg in admin.bot_messages()), what="progress"
    )
    # A 403 from Telegram for the next contestant: they are marked unreachable.
    fake_api.inject_error("sendMessage", 403, description="Forbidden: bot was blocked by the user")
    await _until(lambda: len(delivered()) >= 8, what="some deliveries")
    assert len(delivered()) < 57, "the broadcast ended before the restart"
    await console_bot.restart()  # stopped mid-way; the new process resumes

    await _until(lambda: len(delivered()) == 56, what="every reachable person")
    report = await admin.wait_for(has("BÁO CÁO GỬI TIN NHẮN #1"), timeout=20)
    assert "Tổng số: 60 người" in report.text
    assert "Đã gửi được: 56" in report.text
    assert "Đã chặn bot: 4" in report.text
    assert "Lỗi: 0" in report.text
    await asyncio.sleep(1.0)  # anything sent twice would come now
    per_chat = Counter(
        int(c.params["chat_id"])
        for c in fake_api.calls_of("sendMessage")
        if c.status == 200
        and HEADER in str(c.params.get("text", ""))
        and int(c.params["chat_id"]) != ADMIN  # the preview shows it too
    )
    assert set(per_chat.values()) == {1} and len(per_chat) == 56
    assert all(not _broadcasts_to(user) for user in blocked)
    statuses = [c.status for c in fake_api.calls_of("sendMessage")]
    assert 429 in statuses and 403 in statuses
    # One progress message, edited to its final state.
    progress = [msg for msg in admin.bot_messages() if "Tin nhắn #1 —" in msg.text]
    assert len(progress) == 1
    await _until(lambda: "Đã gửi xong" in progress[0].text, what="the final progress")
    assert "đã gửi 56/60 · chặn bot 4 · lỗi 0" in progress[0].text
    rows = [r for r in await _outbox(console_bot) if r.key.startswith("broadcast:1:")]
    assert Counter(r.outcome for r in rows) == {"sent": 56, "blocked": 4}
    async with runtime(console_bot.app).engine.connect() as conn:
        unreachable = await conn.scalar(
            select(func.count()).where(m.PersonRow.unreachable_at.is_not(None))
        )
        status = await conn.scalar(select(m.BroadcastRow.status))
    assert unreachable == 4 and status == "done"


async def test_a_result_due_during_a_broadcast_goes_out_before_it_ends(
    console_bot: BotRunner,
    fake_api: FakeBotApi,
    rules: ContestRules,
    seeded: AsyncEngine,
    clock: ManualClock,
):
    """A broadcast to 150 takes 5 s at 30 messages/s; an attempt closed by its deadline
    meanwhile has its result sent within a couple of seconds, not after the broadcast."""
    contestant = fake_api.user(9500, first_name="Thí sinh")
    await register_civil_servant(contestant, phone="0935000000")
    intro = await say(contestant, "/thi", "Bắt đầu")
    await contestant.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    await contestant.wait_for(has("Câu 1/20"))
    uids = await _people(seeded, rules, fake_api, 150)
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    preview = await _compose(admin, "📝 Đã đăng ký, chưa thi", "Vòng 1 sắp kết thúc")
    assert "Sẽ gửi tới 150 người" in preview.text

    def delivered() -> int:
        return sum(1 for u in uids if _broadcasts_to(fake_api.user(u)))

    await admin.press("✅ Xác nhận gửi", message_id=preview.message_id)
    await _until(lambda: delivered() >= 20, what="the broadcast under way")
    clock.advance(minutes=21)  # the attempt runs out: its result is queued
    await contestant.wait_for_new_message(timeout=4, predicate=has("Đã hết thời gian"))
    assert delivered() < 150, "the result waited for the whole broadcast"
    await _until(lambda: delivered() == 150, what="the rest of the broadcast")


async def test_blocked_persons_are_skipped_until_they_write_again(
    console_bot: BotRunner, fake_api: FakeBotApi, rules: ContestRules, seeded: AsyncEngine
):
    uids = await _people(seeded, rules, fake_api, 6)
    gone = fake_api.user(uids[0])
    gone.block()
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    preview = await _compose(admin, "👥 Tất cả thí sinh đã đăng ký", "Lần một")
    await admin.press("✅ Xác nhận gửi", message_id=preview.message_id)
    await admin.wait_for(has("BÁO CÁO GỬI TIN NHẮN #1"), timeout=15)

    # The next broadcast skips them (and says so), even though they unblocked meanwhile.
    gone.unblock()
    preview = await _compose(admin, "👥 Tất cả thí sinh đã đăng ký", "Lần hai")
    assert "Sẽ gửi tới 5 người" in preview.text and "1 người đã chặn bot" in preview.text
    await admin.press("✅ Xác nhận gửi", message_id=preview.message_id)
    await admin.wait_for(has("BÁO CÁO GỬI TIN NHẮN #2"), timeout=15)
    assert not _broadcasts_to(gone)
    assert all(len(_broadcasts_to(fake_api.user(u))) == 2 for u in uids[1:])

    # They write to the bot: reachable again, and the third broadcast reaches them.
    await say(gone, "/thele", "")
    await _until(
        lambda: not runtime(console_bot.app).service.outbox.flagged(Account.telegram(gone.id))
    )
    async with runtime(console_bot.app).engine.connect() as conn:
        assert (
            await conn.scalar(select(func.count()).where(m.PersonRow.unreachable_at.is_not(None)))
            == 0
        )
    preview = await _compose(admin, "👥 Tất cả thí sinh đã đăng ký", "Lần ba")
    assert "Sẽ gửi tới 6 người" in preview.text
    await admin.press("✅ Xác nhận gửi", message_id=preview.message_id)
    await admin.wait_for(has("BÁO CÁO GỬI TIN NHẮN #3"), timeout=15)
    assert [msg.text.split("\n")[-1] for msg in _broadcasts_to(gone)] == ["Lần ba"]


async def test_contestants_are_refused_and_stale_or_double_confirms_change_nothing(
    console_bot: BotRunner,
    fake_api: FakeBotApi,
    rules: ContestRules,
    seeded: AsyncEngine,
    clock: ManualClock,
):
    uids = await _people(seeded, rules, fake_api, 3)
    contestant = fake_api.user(uids[0])
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    preview = await _compose(admin, "📝 Đã đăng ký, chưa thi", "Mời các bạn vào thi")
    assert "Sẽ gửi tới 3 người" in preview.text

    # A contestant: the command, and a forged confirm of the organiser's draft.
    refusal = await say(contestant, "/guitin", "chỉ dành cho Ban Tổ chức")
    query = await contestant.press_data("a:bc_ok:1", refusal.message_id)
    answer = await contestant.wait_callback_answer(query)
    assert answer.text is not None and "Ban Tổ chức" in answer.text
    assert await _outbox(console_bot) == []

    # Another organiser cannot confirm it either.
    other = fake_api.user(9002, first_name="Phó ban")
    await say(admin, "/capquyen telegram:9002", "Đã cấp quyền")
    other_msg = await say(other, "/quantri", "CHỨC NĂNG QUẢN TRỊ")
    await other.press_data("a:bc_ok:1", other_msg.message_id)
    await other.wait_for(has("Chỉ người soạn"))

    # A preview left for more than an hour is stale.
    clock.advance(minutes=61)
    await admin.press("✅ Xác nhận gửi", message_id=preview.message_id)
    await admin.wait_for(has("quá hạn"))
    assert await _outbox(console_bot) == []

    clock.advance(minutes=-61)
    await admin.press_data("a:bc_ok:1", preview.message_id)
    await admin.wait_for(has("Đã xác nhận tin nhắn #1"))
    await _until(lambda: all(_broadcasts_to(fake_api.user(u)) for u in uids), what="delivery")
    # Pressed again (a double press, a replayed button): nothing more is queued or sent.
    for data in ("a:bc_ok:1", "a:bc_no:1"):
        query = await admin.press_data(data, preview.message_id)
        answer = await admin.wait_callback_answer(query)
        assert answer.text is not None and "đã được xác nhận gửi trước đó" in answer.text
    await asyncio.sleep(0.5)
    assert len([r for r in await _outbox(console_bot) if r.key.startswith("broadcast:")]) == 3
    assert all(len(_broadcasts_to(fake_api.user(u))) == 1 for u in uids)

    audit = await _audit(console_bot)
    who = f"telegram:{contestant.id}"
    assert (who, "guitin", "refused") in audit and (who, "bc_ok", "refused") in audit
    assert ("telegram:9002", "bc_ok", "failed") in audit
    assert (f"telegram:{ADMIN}", "broadcast_draft", "ok") in audit
    assert audit.count((f"telegram:{ADMIN}", "broadcast_confirm", "ok")) == 1
    assert audit.count((f"telegram:{ADMIN}", "bc_ok", "failed")) == 2  # stale, then double
    assert (f"telegram:{ADMIN}", "bc_no", "failed") in audit


async def test_a_cancelled_draft_sends_nothing_and_a_unit_is_chosen_by_code(
    console_bot: BotRunner, fake_api: FakeBotApi
):
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    await say(admin, "/guitin", "Chọn nhóm người nhận")
    await admin.press("🏛 Một đơn vị")
    await admin.wait_for(has("mã đơn vị"))
    await say(admin, "KHONG-CO", "Không có đơn vị nào có mã")
    asked = await say(admin, "p-catlinh", "Bước 2/3")
    assert "UBND phường Cát Linh" in asked.text
    preview = await say(admin, "Họp đầu mối lúc 14h", "XEM TRƯỚC")
    assert "Sẽ gửi tới 0 người" in preview.text
    await admin.press("✖️ Hủy", message_id=preview.message_id)
    await admin.wait_for(has("Đã hủy tin nhắn #1"))
    await admin.press_data("a:bc_ok:1", preview.message_id)
    await admin.wait_for(has("đã bị hủy"))
    assert await _outbox(console_bot) == []
    # Picking a unit from the list works too.
    await say(admin, "/guitin", "Chọn nhóm người nhận")
    await admin.press("🏛 Một đơn vị")
    await admin.wait_for(has("mã đơn vị"))
    await admin.press("UBND phường")
    await admin.wait_for(has("Chọn đơn vị"))
    await admin.press("UBND phường Cát Linh")
    await admin.wait_for(has("cán bộ, công chức của UBND phường Cát Linh"))


# ------------------------------------------------------------------ segments


async def _person(
    engine: AsyncEngine,
    uid: int,
    *,
    unit: str | None = None,
    ward: str | None = None,
    locked: bool = False,
    unreachable: bool = False,
    attempts: list[str] | None = None,
) -> int:
    """A registered person (a civil servant of ``unit``, or a citizen of ``ward``) with
    round-1 attempts of these statuses; their person id."""
    now = datetime(2024, 8, 1, tzinfo=UTC)
    async with engine.begin() as conn:
        units = dict((await conn.execute(select(m.UnitRow.code, m.UnitRow.id))).all())
        person_id = (
            await conn.execute(
                insert(m.PersonRow)
                .values(
                    full_name=f"Người {uid}",
                    birth_date=date(1990, 1, 1),
                    phone=f"09{uid:08d}",
                    group="civil_servant" if unit else "citizen",
                    unit_id=units[unit] if unit else None,
                    position="staff" if unit else None,
                    ward_id=units[ward] if ward else None,
                    consent_at=now,
                    registered_at=now,
                    locked_at=now if locked else None,
                    unreachable_at=now if unreachable else None,
                    reminders_off=False,
                )
                .returning(m.PersonRow.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(m.AccountRow).values(
                channel="telegram",
                external_id=str(uid),
                person_id=person_id,
                linked_at=now,
                last_used_at=now,
            )
        )
        for number, status in enumerate(attempts or [], start=1):
            await conn.execute(
                insert(m.AttemptRow).values(
                    person_id=person_id,
                    round=1,
                    number=number,
                    question_count=20,
                    status=status,
                    started_at=now,
                    deadline_at=now + timedelta(minutes=20),
                    correct_count=0,
                    warned=0,
                )
            )
    return person_id


async def test_each_segment_picks_exactly_its_people(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock
):
    service = ContestService(SqlUnitOfWorkFactory(seeded), clock, rules)
    async with seeded.connect() as conn:
        kinds = dict((await conn.execute(select(m.UnitRow.code, m.UnitRow.kind))).all())
    ward = next(code for code, kind in kinds.items() if kind == "phuong")
    other_ward = next(code for code, kind in kinds.items() if kind == "phuong" and code != ward)
    department = next(code for code, kind in kinds.items() if kind == "phong_ban")
    school = next(code for code, kind in kinds.items() if kind == "giao_duc")
    p = {
        "fresh": await _person(seeded, 1, unit=ward),
        "one_done": await _person(seeded, 2, unit=department, attempts=["submitted"]),
        "citizen_two": await _person(seeded, 3, ward=ward, attempts=["submitted", "expired"]),
        "one_open": await _person(seeded, 4, unit=ward, attempts=["in_progress"]),
        "locked": await _person(seeded, 5, unit=ward, locked=True),
        "unreachable": await _person(seeded, 6, unit=ward, unreachable=True, attempts=["expired"]),
        "focal": await _person(seeded, 7, unit=school),
        "other_ward": await _person(seeded, 8, unit=other_ward),
    }
    async with seeded.begin() as conn:
        await conn.execute(
            insert(m.StaffRoleRow).values(
                channel="telegram",
                external_id="7",
                role="focal",
                unit_id=None,
                person_id=None,  # assigned by account: found through the account
                granted_by="test",
                granted_at=clock.now(),
            )
        )
    admin = Actor(Account.telegram(ADMIN), Role.ORGANISER)
    async with seeded.connect() as conn:
        ward_id = await conn.scalar(select(m.UnitRow.id).where(m.UnitRow.code == ward))
    expected = {
        Segment(SegmentKind.ALL): {
            "fresh",
            "one_done",
            "citizen_two",
            "one_open",
            "focal",
            "other_ward",
        },
        Segment(SegmentKind.NO_ATTEMPT): {"fresh", "focal", "other_ward"},
        Segment(SegmentKind.ONE_LEFT): {"one_done", "one_open"},
        Segment(SegmentKind.UNIT_KIND, unit_kind=UnitKind.WARD): {
            "fresh",
            "one_open",
            "other_ward",
        },
        Segment(SegmentKind.UNIT, unit_id=ward_id): {"fresh", "one_open"},
        Segment(SegmentKind.FOCAL): {"focal"},
    }
    names = {person_id: name for name, person_id in p.items()}
    for segment, wanted in expected.items():
        audience = await service.broadcasts.audience(segment)
        assert audience.recipients == len(wanted), segment
        preview = await service.broadcasts.draft(admin, segment, f"Gửi {segment.kind}")
        assert preview.audience.recipients == len(wanted)
        sent = await service.broadcasts.confirm(admin, preview.broadcast.id)
        assert sent.total == len(wanted) and sent.status == "sending"
        async with seeded.connect() as conn:
            rows = (
                await conn.execute(
                    select(m.OutboxRow.key, m.OutboxRow.person_id, m.OutboxRow.payload).where(
                        m.OutboxRow.kind == "broadcast",
                        m.OutboxRow.key.startswith(f"broadcast:{sent.id}:"),
                    )
                )
            ).all()
        assert {names[r.person_id] for r in rows} == wanted, segment
        assert all(r.key == f"broadcast:{sent.id}:{r.person_id}" for r in rows)
        assert all(json.loads(r.payload) == {"broadcast_id": sent.id} for r in rows)
    everyone = await service.broadcasts.audience(Segment(SegmentKind.ALL))
    assert (everyone.unreachable, everyone.locked) == (1, 1)
