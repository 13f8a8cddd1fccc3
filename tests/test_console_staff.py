"""The console's roles and audit log, end to end through the fake Bot API: organisers of
the settings, promoting and demoting in the chat, focal persons, refusals of contestants
(typed commands and forged buttons), the scoped command menus, the audit log."""

from __future__ import annotations

import json

from sqlalchemy import select

from fakes.telegram import FakeBotApi
from storage import models as m
from tests.conftest import ADMIN, BotRunner, has, register_civil_servant, say


async def audit_rows(bot: BotRunner) -> list[m.AuditRow]:
    from bot.app import runtime

    async with runtime(bot.app).engine.connect() as conn:
        rows = await conn.execute(select(m.AuditRow).order_by(m.AuditRow.id))
        return list(rows.all())  # type: ignore[arg-type]


def menu_of(api: FakeBotApi, chat_id: int) -> list[str]:
    key = json.dumps([{"chat_id": chat_id, "type": "chat"}, ""], sort_keys=True)
    return [c["command"] for c in api.commands.get(key, [])]


def default_menu(api: FakeBotApi) -> list[str]:
    key = json.dumps([{"type": "default"}, ""], sort_keys=True)
    return [c["command"] for c in api.commands.get(key, [])]


async def test_a_contestant_is_refused_console_commands_and_buttons_and_it_is_audited(
    console_bot: BotRunner, fake_api: FakeBotApi
):
    user = fake_api.user(9101, first_name="Khách")
    await register_civil_servant(user, phone="0930000001")
    refusal = await say(user, "/nhatky", "chỉ dành cho Ban Tổ chức")
    assert "ghi lại" in refusal.text
    await say(user, "/capquyen 0930000001", "chỉ dành cho Ban Tổ chức")
    # A forged console button on one of the bot's messages.
    query = await user.press_data("a:audit:0", refusal.message_id)
    answer = await user.wait_callback_answer(query)
    assert answer.text is not None and "Ban Tổ chức" in answer.text
    rows = await audit_rows(console_bot)
    assert [(r.actor, r.action, r.outcome) for r in rows] == [
        ("telegram:9101", "nhatky", "refused"),
        ("telegram:9101", "capquyen", "refused"),
        ("telegram:9101", "audit", "refused"),
    ]
    # Nothing changed: still a contestant, and the menus never showed the console.
    assert "nhatky" not in default_menu(fake_api)
    assert menu_of(fake_api, 9101) == []


async def test_organisers_promote_demote_and_assign_focal_persons(
    console_bot: BotRunner, fake_api: FakeBotApi
):
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    # The organiser of the settings sees the console in their own chat's menu.
    assert {"quantri", "capquyen", "nhatky"} <= set(menu_of(fake_api, ADMIN))
    assert "capquyen" not in default_menu(fake_api)
    home = await say(admin, "/quantri", "CHỨC NĂNG QUẢN TRỊ")
    assert "/capquyen" in home.text and "/nhatky" in home.text

    deputy = fake_api.user(9102, first_name="Phó ban")
    await register_civil_servant(deputy, phone="0930000002")
    await say(deputy, "/nhatky", "chỉ dành cho Ban Tổ chức")
    done = await say(admin, "/capquyen 0930000002", "Đã cấp quyền Ban Tổ chức")
    assert "telegram:9102" in done.text
    assert "nhatky" in menu_of(fake_api, 9102)
    log = await say(deputy, "/nhatky", "NHẬT KÝ QUẢN TRỊ")
    assert "promote" in log.text and "Trưởng ban" in log.text

    # A focal person of a ward: the console's focal part only.
    focal = fake_api.user(9103, first_name="Đầu mối")
    await register_civil_servant(focal, phone="0930000003")
    await say(admin, "/daumoi p-catlinh 0930000003", "đầu mối của UBND phường Cát Linh")
    assert "quantri" in menu_of(fake_api, 9103)
    assert "capquyen" not in menu_of(fake_api, 9103)
    await say(focal, "/quantri", "đầu mối đơn vị")
    await say(focal, "/capquyen 0930000001", "chỉ dành cho Ban Tổ chức")

    # Mistakes are explained and change nothing.
    await say(admin, "/daumoi KHONG-CO 0930000003", "Không có đơn vị nào có mã")
    await say(admin, "/capquyen 0999999999", "Chưa có thí sinh nào đăng ký")
    await say(admin, "/capquyen", "Cách dùng")
    await say(admin, f"/thuquyen telegram:{ADMIN}", "theo cấu hình")

    await say(admin, "/thuquyen 0930000002", "Đã thu hồi quyền")
    await say(deputy, "/nhatky", "chỉ dành cho Ban Tổ chức")
    assert "nhatky" not in menu_of(fake_api, 9102)

    rows = await audit_rows(console_bot)
    outcomes = [(r.actor, r.action, r.outcome) for r in rows]
    assert ("telegram:9001", "promote", "ok") in outcomes
    assert ("telegram:9001", "assign_focal", "ok") in outcomes
    assert ("telegram:9001", "demote", "ok") in outcomes
    assert ("telegram:9103", "capquyen", "refused") in outcomes
    assert ("telegram:9001", "daumoi", "failed") in outcomes
    assert sum(1 for r in rows if r.outcome == "refused") == 3


async def test_the_audit_log_pages_with_buttons(console_bot: BotRunner, fake_api: FakeBotApi):
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    for _ in range(12):
        await say(admin, "/quantri", "CHỨC NĂNG QUẢN TRỊ")
    first = await say(admin, "/nhatky", "trang 1/2")
    await admin.press("Trang sau ▶️", message_id=first.message_id)
    second = await admin.wait_for(has("trang 2/2"))
    assert second.message_id == first.message_id  # the same message, edited
