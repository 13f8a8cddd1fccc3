"""/khoa and /mokhoa end to end through the fake Bot API, on both engines: a locked
contestant cannot start an attempt (/thi and the «Bắt đầu» button say why), is left out of
the leaderboard and the participation figures, and is back after /mokhoa; an attempt open
at the lock may be finished and does not count; mistakes change nothing; all audited."""

from __future__ import annotations

from sqlalchemy import func, select

from contest.clock import ManualClock
from contest.model import Account
from contest.ui import texts
from contest.usecases.locks import MAX_LOCK_REASON
from fakes.telegram import FakeBotApi
from storage import models as m
from tests.conftest import BotRunner, say
from tests.test_console_staff import ADMIN, audit_rows
from tests.test_console_stats import add_person, phone_of, stats_bot, take_exam

__all__ = ["stats_bot"]  # the fixture, shared with the statistics' tests

REASON = "Trùng tài khoản với số 0940000009."


async def attempts_of(bot: BotRunner, account: Account) -> int:
    async with bot.service.uow(write=False) as uow:
        person = await uow.persons.by_account(account)
        assert person is not None
        return await uow.attempts.count_for(person.id, 1)


async def locked_at(bot: BotRunner, n: int) -> object:
    from bot.app import runtime

    async with runtime(bot.app).engine.connect() as conn:
        return await conn.scalar(
            select(m.PersonRow.locked_at).where(m.PersonRow.phone == "+84" + phone_of(n)[1:])
        )


async def test_a_locked_contestant_cannot_start_is_out_of_the_ranking_and_comes_back(
    stats_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    service = stats_bot.service
    first = await add_person(service, 1, "Lê Văn Một", unit_code="T-DU30", leader=True)
    second = await add_person(service, 2, "Lê Văn Hai", unit_code="T-DU30")
    await take_exam(service, clock, first, 20)
    await take_exam(service, clock, second, 15)
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    user = fake_api.user(80_001, first_name="Một")
    intro = await say(user, "/thi", "Bắt đầu làm bài")  # before the lock: the button

    done = await say(admin, f"/khoa {phone_of(1)} {REASON}", "Đã khóa tài khoản dự thi")
    assert "Lê Văn Một" in done.text and "Lý do: Trùng tài khoản với số 0940000009" in done.text
    assert "đang làm dở" not in done.text

    # The old «Bắt đầu» button: a popup says why, and no attempt starts.
    query = await user.press(texts.BTN_START_EXAM, message_id=intro.message_id)
    answer = await user.wait_callback_answer(query)
    assert answer.text == (
        "Tài khoản của bạn đang bị tạm khóa, chưa thể bắt đầu bài thi. Lý do: Trùng tài "
        "khoản với số 0940000009. Liên hệ Ban Tổ chức."
    )
    assert answer.show_alert
    assert await attempts_of(stats_bot, first) == 1
    locked = await say(user, "/thi", "Tài khoản của bạn đang bị tạm khóa")
    assert "Lý do: Trùng tài khoản với số 0940000009" in locked.text
    assert "Liên hệ Ban Tổ chức" in locked.text and locked.buttons == []

    board = await say(admin, "/bxh", "BẢNG XẾP HẠNG")
    assert "Lê Văn Một" not in board.text and "1. Lê Văn Hai" in board.text
    assert "1 thí sinh" in board.text
    table = await say(admin, "/thongke", "THỐNG KÊ")
    assert "đăng ký 1 · đã thi 1 (10%) · lãnh đạo đã thi 0" in table.text

    # Locking twice: explained, nothing changes.
    since = await locked_at(stats_bot, 1)
    again = await say(admin, f"/khoa {phone_of(1)} lý do khác", "đã bị khóa từ")
    assert "ngày 05/08/2024" in again.text
    assert "lý do: Trùng tài khoản với số 0940000009" in again.text
    assert "Không có gì thay đổi" in again.text
    assert await locked_at(stats_bot, 1) == since

    await say(admin, f"/mokhoa {phone_of(1)}", "Đã mở khóa tài khoản dự thi của Lê Văn Một")
    board = await say(admin, "/bxh", "BẢNG XẾP HẠNG")
    assert "1. Lê Văn Một" in board.text and "2. Lê Văn Hai" in board.text
    await say(admin, f"/mokhoa {phone_of(1)}", "không bị khóa. Không có gì thay đổi")
    await say(user, "/thi", "Bắt đầu làm bài")
    assert await locked_at(stats_bot, 1) is None

    rows = await audit_rows(stats_bot)
    assert [
        (r.action, r.outcome) for r in rows if r.action in ("lock", "unlock", "khoa", "mokhoa")
    ] == [
        ("lock", "ok"),
        ("khoa", "failed"),
        ("unlock", "ok"),
        ("mokhoa", "failed"),
    ]
    lock = next(r for r in rows if r.action == "lock")
    assert lock.actor == f"telegram:{ADMIN}" and lock.target == "+84" + phone_of(1)[1:]
    assert "Trùng tài khoản" in str(lock.detail)


async def test_an_attempt_open_at_the_lock_may_be_finished_and_does_not_count(
    stats_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    service = stats_bot.service
    account = await add_person(service, 3, "Trần Đang Thi", unit_code="T-DU30")
    attempt_id = await take_exam(service, clock, account, 19, finish=False)
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    done = await say(admin, f"/khoa {phone_of(3)} Thi hộ", "Đã khóa")
    assert "đang làm dở một bài thi" in done.text
    user = fake_api.user(80_003, first_name="Thí sinh")
    await say(user, "/thi", "Tiếp tục bài thi đang làm dở")  # not cut off
    outcome = await service.exams.answer(account, attempt_id, 19, 0)
    assert outcome.summary is not None  # finished
    await say(admin, "/bxh", "Chưa có kết quả vòng 1")
    await say(admin, f"/mokhoa {phone_of(3)}", "Đã mở khóa")
    board = await say(admin, "/bxh", "BẢNG XẾP HẠNG")
    assert "1. Trần Đang Thi" in board.text


async def test_mistakes_are_explained_and_change_nothing(
    stats_bot: BotRunner, fake_api: FakeBotApi
):
    await add_person(stats_bot.service, 4, "Ngô <b>Bốn</b> & Co", unit_code="T-DU30")
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    usage = await say(admin, "/khoa", "Cách dùng: /khoa <số điện thoại của thí sinh> <lý do>")
    assert "tối đa 90 ký tự" in usage.text
    await say(admin, f"/khoa {phone_of(4)}", "Cần ghi lý do khóa")
    await say(admin, f"/khoa {phone_of(4)} {'x' * 91}", "tối đa 90 ký tự")
    await say(admin, "/khoa 12ab lý do", "“12ab” không phải số điện thoại hợp lệ")
    await say(admin, "/khoa <b>09 lý do", "“<b>09” không phải số điện thoại hợp lệ")
    await say(admin, "/khoa 0999999999 lý do", "Chưa có thí sinh nào đăng ký")
    await say(admin, "/mokhoa", "Cách dùng: /mokhoa <số điện thoại của thí sinh>")
    await say(admin, f"/mokhoa {phone_of(4)}", "không bị khóa")
    assert await locked_at(stats_bot, 4) is None
    # Names and reasons are shown as typed, never as markup.
    done = await say(admin, f"/khoa {phone_of(4)} <i>trùng</i>", "Đã khóa")
    assert "Ngô <b>Bốn</b> & Co" in done.text and "Lý do: <i>trùng</i>" in done.text
    from bot.app import runtime

    async with runtime(stats_bot.app).engine.connect() as conn:
        kept = await conn.scalar(
            select(func.count())
            .select_from(m.PersonRow)
            .where(m.PersonRow.lock_reason == "<i>trùng</i>")
        )
    assert kept == 1
    rows = await audit_rows(stats_bot)
    # Usage texts change nothing and are not actions; each refused change is recorded.
    assert [(r.action, r.outcome) for r in rows] == [("khoa", "failed")] * 5 + [
        ("mokhoa", "failed"),
        ("lock", "ok"),
    ]


def test_the_locked_popup_fits_in_a_callback_answer():
    longest = texts.error("account_locked", reason="Ư" * MAX_LOCK_REASON)
    assert len(longest) <= 200
