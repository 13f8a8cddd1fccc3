"""Both channels in one process (``--channel telegram,zalo``): a person registered on
Telegram links their Zalo account with a one-time code, takes one attempt on each channel,
is counted once, and gets each result on the channel they used last. The organisers'
console through Zalo."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import build_application, runtime, start, stop
from bot.settings import Settings
from contest.clock import ManualClock
from contest.model import Account
from contest.rules import ContestRules
from fakes.telegram import FakeBotApi
from fakes.zalo import FakeZaloApi
from storage import models as m
from tests.conftest import register_civil_servant
from tests.conftest import say as tg_say
from tests.test_e2e_exam import answer_questions, open_exam
from tests.test_zalo_e2e import answer_all, attempts_of, has, say, seeded_file
from tests.test_zalo_e2e import open_exam as zalo_open_exam


class Both:
    """The Telegram application with the Zalo channel, as ``bot.app`` builds it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    @property
    def service(self) -> Any:
        return runtime(self.app).service


@pytest.fixture
async def both(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    tmp_path: Path,
) -> AsyncIterator[Any]:
    db_url = await seeded_file(tmp_path, rules, clock)
    async with FakeZaloApi() as zalo:
        settings = Settings(
            bot_token=fake_api.token,
            bot_api_url=fake_api.base_url,
            zalo_token=zalo.token,
            zalo_api_url=zalo.base_url,
            zalo_admin_ids="z-admin",
            database_url=db_url,
            sweep_seconds=0.1,
            poll_timeout=1,
            zalo_send_rate=1000.0,
            zalo_chat_send_interval=0.0,
            _env_file=None,
        )
        app = build_application(settings, rules, clock=clock, zalo=True)
        await start(app, poll_timeout=1)
        try:
            yield app, zalo
        finally:
            await stop(app)


@pytest.fixture
async def bot(both: Any) -> Any:
    """``answer_questions`` of the Telegram suite reads the engine through ``bot.app``."""
    return Both(both[0])


async def test_a_linked_person_takes_one_attempt_on_each_channel_counted_once(
    both: Any, bot: Both, fake_api: FakeBotApi, clock: ManualClock
):
    app, zalo = both
    engine = runtime(app).engine
    tg_user = fake_api.user(7001)
    await register_civil_servant(tg_user, phone="0912000701")
    shown = await tg_say(tg_user, "/lienket", "Mã liên kết")
    code = re.search(r"Mã liên kết của bạn: (\d{6})", shown.text)
    assert code is not None

    z_user = zalo.user("z-701", "An trên Zalo")
    wrong = "000000" if code.group(1) != "000000" else "111111"
    await say(z_user, f"/lienket {wrong}", "không đúng hoặc đã hết hạn")
    linked = await say(z_user, f"lienket {code.group(1)}", "Đã liên kết")
    assert "Nguyễn Văn An" in linked.text
    # The code works once only.
    other = zalo.user("z-702")
    await say(other, code.group(1), "không đúng hoặc đã hết hạn")
    # The Zalo account is the same person: no second registration, the same profile.
    await say(z_user, "dangky", "Bạn đã đăng ký dự thi")
    assert "Nguyễn Văn An" in (await say(z_user, "hoso", "HỒ SƠ")).text

    # Attempt 1 on Zalo: 5 right, then the deadline. The result goes to Zalo (used last).
    card = await zalo_open_exam(z_user)
    account = Account.zalo("z-701")
    attempt1 = (await attempts_of(engine, account))[0].id
    await answer_all(engine, z_user, card, attempt1, [True] * 5)
    clock.advance(minutes=21)
    result = await z_user.wait_for(has("Đã hết thời gian làm bài"))
    assert "5/20" in result.text and "còn 1 lần thi" in result.text
    assert not [m for m in tg_user.bot_messages() if "Đã hết thời gian" in m.text]

    # Attempt 2 on Telegram: the same person's second and last attempt.
    intro = await tg_say(tg_user, "/thi", "Bắt đầu")
    assert "1/2" in intro.text
    tg_card = await open_exam(tg_user)
    attempt2 = (await attempts_of(engine, Account.telegram(7001)))[1].id
    done = await answer_questions(bot, tg_user, tg_card, attempt2, [True] * 10 + [False] * 10)
    assert "10/20" in done.text and "đã thi đủ số lần" in done.text

    await say(z_user, "thi", "đã thi đủ 2 lần")
    ranking = await bot.service.results.ranking()
    person_ids = [r.result.person_id for r in ranking]
    assert len(person_ids) == len(set(person_ids)) == 1
    assert ranking[0].result.correct == 10 and ranking[0].result.attempt_id == attempt2


async def test_the_console_through_zalo(both: Any, bot: Both):
    _, zalo = both
    admin = zalo.user("z-admin", "Ban Tổ chức")
    stats = await say(admin, "thongke", "THỐNG KÊ THAM GIA VÒNG 1")
    assert "<b>" not in stats.text  # plain text on Zalo
    # A contestant typing an organisers' command is refused (and audited by the router).
    stranger = zalo.user("z-999", "Khách")
    refused = await say(stranger, "/thongke", "chỉ dành cho Ban Tổ chức")
    assert "THỐNG KÊ" not in refused.text
    # Files cannot be sent on Zalo: said plainly.
    await admin.send_image()
    await admin.wait_for(has("Zalo không cho phép gửi tệp"))
    # /xuat answers with a file: on Zalo it is refused before any workbook is made, and
    # nothing is recorded as exported.
    await say(admin, "xuat", "Zalo không gửi được tệp đính kèm")
    async with runtime(bot.app).engine.connect() as conn:
        actions = (await conn.execute(select(m.AuditRow.action))).scalars().all()
    assert "xuat" not in actions


async def test_a_person_who_blocks_the_bot_on_one_channel_is_reached_on_the_other(
    both: Any, bot: Both, fake_api: FakeBotApi, clock: ManualClock
):
    """A linked person blocks the Telegram bot: their result goes to Zalo instead, and they
    are not marked unreachable (reminders and broadcasts still reach them there)."""
    app, zalo = both
    engine = runtime(app).engine
    tg_user = fake_api.user(7101)
    await register_civil_servant(tg_user, phone="0912000711")
    shown = await tg_say(tg_user, "/lienket", "Mã liên kết")
    code = re.search(r"Mã liên kết của bạn: (\d{6})", shown.text)
    assert code is not None
    z_user = zalo.user("z-711", "Bình trên Zalo")
    await say(z_user, f"lienket {code.group(1)}", "Đã liên kết")

    clock.advance(seconds=5)
    await open_exam(tg_user)  # on Telegram: the channel used last
    tg_user.block()
    clock.advance(minutes=21)
    result = await z_user.wait_for(has("Đã hết thời gian làm bài"))
    assert "0/20" in result.text
    async with engine.connect() as conn:
        unreachable = (
            await conn.execute(
                select(m.PersonRow.unreachable_at).where(m.PersonRow.phone.like("%912000711"))
            )
        ).scalar_one()
    assert unreachable is None
