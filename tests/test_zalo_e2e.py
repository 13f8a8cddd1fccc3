"""The contest on Zalo end to end, through the fake Zalo Bot API over real HTTP and a real
SQLite file: registration with bad inputs, two attempts (best of 2), stale and doubled
replies, a deadline that passes while the bot is down, the webhook."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.settings import Settings
from bot.zalo import ZaloProcess
from contest.clock import ManualClock
from contest.model import Account, Group
from contest.registration import Step
from contest.rules import ContestRules
from fakes.zalo import SECRET_HEADER, FakeZaloApi, FakeZaloUser, ZaloMessage
from storage import models as m
from storage.db import create_engine
from storage.schema import migrate
from tests.conftest import seed

LABELS = "ABC"


@pytest.fixture
async def zalo_api() -> AsyncIterator[FakeZaloApi]:
    async with FakeZaloApi() as api:
        yield api


@pytest.fixture
async def db_url(database_url: str, rules: ContestRules, clock: ManualClock) -> str:
    """A SQLite file, or a PostgreSQL schema of its own (with CONTEST_TEST_POSTGRES_URL),
    with the schema and the sample bank and units."""
    return await seeded_url(database_url, rules, clock)


async def seeded_file(tmp_path: Path, rules: ContestRules, clock: ManualClock) -> str:
    """A SQLite file with the schema and the sample bank and units; its URL."""
    return await seeded_url(f"sqlite+aiosqlite:///{tmp_path / 'zalo.db'}", rules, clock)


async def seeded_url(url: str, rules: ContestRules, clock: ManualClock) -> str:
    """The database at ``url`` with the schema and the sample bank and units; its URL."""
    engine = create_engine(url)
    try:
        await migrate(engine)
        await seed(engine, rules, clock)
    finally:
        await engine.dispose()
    return url


class ZaloRunner:
    """The Zalo-only process against the fake; restartable."""

    def __init__(
        self, api: FakeZaloApi, rules: ContestRules, clock: ManualClock, url: str, **extra: Any
    ) -> None:
        self.api = api
        self.rules = rules
        self.clock = clock
        self.url = url
        self.polling = extra.pop("polling", True)
        self.settings = Settings(
            zalo_token=api.token,
            zalo_api_url=api.base_url,
            database_url=url,
            sweep_seconds=0.1,
            poll_timeout=1,
            zalo_send_rate=1000.0,
            zalo_chat_send_interval=0.0,
            _env_file=None,
            **extra,
        )
        self.process: ZaloProcess | None = None

    @property
    def engine(self) -> AsyncEngine:
        assert self.process is not None
        return self.process.engine

    async def start(self) -> None:
        self.process = ZaloProcess(
            self.settings, self.rules, clock=self.clock, polling=self.polling
        )
        await self.process.start()

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()
            self.process = None


@pytest.fixture
async def zbot(
    zalo_api: FakeZaloApi, rules: ContestRules, clock: ManualClock, db_url: str
) -> AsyncIterator[ZaloRunner]:
    runner = ZaloRunner(zalo_api, rules, clock, db_url)
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


# ------------------------------------------------------------------ helpers


def has(fragment: str) -> Callable[[ZaloMessage], bool]:
    return lambda message: fragment in message.text


async def say(user: FakeZaloUser, text: str, expect: str, timeout: float = 5.0) -> ZaloMessage:
    await user.send_text(text)
    return await user.wait_for(has(expect), timeout)


def number_of(message: ZaloMessage, label: str) -> str:
    """The number of a numbered choice, by (a part of) its label."""
    for line in message.text.splitlines():
        found = re.match(r"^(\d+)\. (.*)$", line)
        if found and label in found.group(2):
            return found.group(1)
    raise AssertionError(f"no choice {label!r} in:\n{message.text}")


async def pick(user: FakeZaloUser, message: ZaloMessage, label: str, expect: str) -> ZaloMessage:
    return await say(user, number_of(message, label), expect)


async def register_zalo(
    user: FakeZaloUser,
    *,
    name: str = "Lê Văn Cường",
    phone: str = "0931234567",
    birth: str = "12/12/1988",
) -> ZaloMessage:
    consent = await say(user, "/dangky", "Tôi đồng ý")
    await pick(user, consent, "Tôi đồng ý", "họ và tên")
    await say(user, name, "ngày sinh")
    await say(user, birth, "số điện thoại di động")
    group = await say(user, phone, "tư cách nào")
    kind = await pick(user, group, "Cán bộ", "thuộc khối nào")
    await pick(user, kind, "UBND phường", "Chọn")
    found = await say(user, "Cát Linh", "Kết quả tìm kiếm")
    position = await pick(user, found, "UBND phường Cát Linh", "chức vụ")
    summary = await pick(user, position, "Công chức", "kiểm tra lại")
    return await pick(user, summary, "Xác nhận đăng ký", "đăng ký dự thi thành công")


async def person_of(engine: AsyncEngine, account: Account) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(m.AccountRow.person_id).where(
                        m.AccountRow.channel == account.channel.value,
                        m.AccountRow.external_id == account.user_id,
                    )
                )
            ).scalar_one()
        )


async def attempts_of(engine: AsyncEngine, account: Account) -> list[Any]:
    person_id = await person_of(engine, account)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(m.AttemptRow)
            .where(m.AttemptRow.person_id == person_id)
            .order_by(m.AttemptRow.id)
        )
        return list(rows.all())


async def answered(engine: AsyncEngine, attempt_id: int) -> list[tuple[int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(m.AttemptItemRow.position, m.AttemptItemRow.choice)
            .where(m.AttemptItemRow.attempt_id == attempt_id, m.AttemptItemRow.choice.is_not(None))
            .order_by(m.AttemptItemRow.position)
        )
        return [(int(p), int(c)) for p, c in rows.all()]


async def correct_label(engine: AsyncEngine, attempt_id: int, position: int) -> str:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(m.AttemptItemRow.option_order, m.QuestionRow.answer)
                .join(m.QuestionRow, m.QuestionRow.id == m.AttemptItemRow.question_id)
                .where(
                    m.AttemptItemRow.attempt_id == attempt_id,
                    m.AttemptItemRow.position == position,
                )
            )
        ).one()
    order = [int(ch) for ch in row.option_order]
    return LABELS[order.index(row.answer)]


def wrong(label: str) -> str:
    return "A" if label != "A" else "B"


def position_of(card: ZaloMessage) -> int:
    return int(card.text.split("Câu ")[1].split("/")[0]) - 1


async def open_exam(user: FakeZaloUser) -> ZaloMessage:
    intro = await say(user, "thi", "gõ 1 để bắt đầu")
    return await pick(user, intro, "Bắt đầu làm bài", "Câu 1/20")


async def answer_all(
    engine: AsyncEngine,
    user: FakeZaloUser,
    card: ZaloMessage,
    attempt_id: int,
    plan: list[bool],
    *,
    styles: tuple[str, ...] = ("{}",),
) -> ZaloMessage:
    """Answer the next questions right or wrong as planned, typing the letter in varied
    ways; the last message (the next card, or the result)."""
    message = card
    for index, right in enumerate(plan):
        position = position_of(message)
        label = await correct_label(engine, attempt_id, position)
        typed = styles[index % len(styles)].format(label if right else wrong(label))
        await user.send_text(typed)
        following = f"Câu {position + 2}/20"
        message = await user.wait_for(
            lambda msg, nxt=following: nxt in msg.text or "bài thi" in msg.text  # type: ignore[misc]
        )
    return message


# ------------------------------------------------------------------ tests


async def test_registration_with_bad_inputs(
    zbot: ZaloRunner, zalo_api: FakeZaloApi, clock: ManualClock
):
    # Someone registered on Telegram already holds 0987654321 (unique across channels).
    service = zbot.process.service if zbot.process else None
    assert service is not None
    tg = Account.telegram(5551)
    reg = service.registration
    await reg.begin_registration(tg)
    await reg.register_input(tg, Step.CONSENT, True)
    await reg.register_input(tg, Step.NAME, "Trần Thị Bình")
    await reg.register_input(tg, Step.BIRTH_DATE, "01/01/1995")
    await reg.register_input(tg, Step.PHONE, ("0987654321", 5551))
    view = await reg.register_input(tg, Step.GROUP, Group.CITIZEN)
    assert view.page is not None
    await reg.register_input(tg, Step.WARD, view.page.units[0].id)
    await reg.confirm_registration(tg)

    user = zalo_api.user("z-100", "Cường")
    welcome = await say(user, "/start", "kênh dự thi trên Zalo")
    assert "1. 📝 Đăng ký dự thi" in welcome.text
    consent = await pick(user, welcome, "Đăng ký dự thi", "Tôi đồng ý")
    assert "gõ 1" in consent.text and "bấm" not in consent.text
    await say(user, "9", "Không có lựa chọn số 9")
    await say(user, "đồng ý", "gõ số thứ tự")  # text where a number is expected
    await say(user, "1", "họ và tên")
    await say(user, "=HYPERLINK()", "Họ và tên không hợp lệ")
    await say(user, "Lê Văn Cường", "ngày sinh")
    await say(user, "31/02/1990", "Ngày sinh không tồn tại")
    ask_phone = await say(user, "12/12/1988", "số điện thoại di động")
    assert "không được hệ thống xác thực" in ask_phone.text
    for bad in ("12345", "0212345678", "091234567", "abc"):
        await say(user, bad, "Số điện thoại di động chưa đúng")
    await say(user, "0987 654 321", "đã được dùng để đăng ký")  # the Telegram person's
    group = await say(user, "+84 93 123 4567", "tư cách nào")
    assert "+84931234567" in group.text
    assert (await user.wait_for(has("chưa được xác thực"), since=ask_phone.seq)).text.startswith(
        "✅"
    )
    kind = await pick(user, group, "Cán bộ", "thuộc khối nào")
    units = await pick(user, kind, "UBND phường", "Chọn")
    await say(user, "không có đơn vị này", "Không tìm thấy")
    found = await say(user, "cat linh", "Kết quả tìm kiếm")
    position = await pick(user, found, "UBND phường Cát Linh", "chức vụ")
    summary = await pick(user, position, "Công chức", "kiểm tra lại")
    assert "gõ 1 để xác nhận" in summary.text
    done = await pick(user, summary, "Xác nhận đăng ký", "đăng ký dự thi thành công")
    assert "Lê Văn Cường" in done.text and units.text
    profile = await say(user, "hồ sơ", "HỒ SƠ DỰ THI")
    assert "+84931234567" in profile.text and "UBND phường Cát Linh" in profile.text
    await say(user, "/dangky", "Bạn đã đăng ký dự thi")


async def test_two_attempts_best_of_two(
    zbot: ZaloRunner, zalo_api: FakeZaloApi, clock: ManualClock
):
    user = zalo_api.user("z-200", "An")
    await register_zalo(user, phone="0931000200")
    account = Account.zalo("z-200")
    card = await open_exam(user)
    assert "⏱ Còn lại 20:00" in card.text
    assert "\nA. " in card.text and "\nB. " in card.text and "\nC. " in card.text
    attempt1 = (await attempts_of(zbot.engine, account))[0].id

    clock.advance(minutes=6)
    done = await answer_all(
        zbot.engine,
        user,
        card,
        attempt1,
        [True] * 15 + [False] * 5,
        styles=("{}", "{}.", "{}".lower() + "", "đáp án {}", "({})"),
    )
    assert "hoàn thành bài thi" in done.text
    assert "15/20" in done.text and "6 phút" in done.text and "còn 1 lần thi" in done.text
    assert "1. 💬 Góp ý về bài thi" in done.text
    # One message per question, each with its number and the time left.
    cards = [msg for msg in user.bot_messages() if "⏱ Còn lại" in msg.text]
    assert [position_of(c) for c in cards] == list(range(20))

    card2 = await open_exam(user)
    attempt2 = (await attempts_of(zbot.engine, account))[1].id
    await answer_all(zbot.engine, user, card2, attempt2, [True] * 3)
    clock.advance(minutes=21)
    result = await user.wait_for(has("Đã hết thời gian làm bài"), timeout=5)
    assert "3/20" in result.text and "15/20" in result.text
    results = await say(user, "/ketqua", "KẾT QUẢ VÒNG 1")
    assert "Lần thi 1: 15/20" in results.text and "Lần thi 2: 3/20" in results.text
    assert "Kết quả được công nhận: 15/20 câu đúng" in results.text
    await say(user, "thi", "đã thi đủ 2 lần")
    rows = await attempts_of(zbot.engine, account)
    assert [r.status for r in rows] == ["submitted", "expired"]


async def test_stale_doubled_and_wrong_replies_change_nothing(
    zbot: ZaloRunner, zalo_api: FakeZaloApi, clock: ManualClock
):
    user = zalo_api.user("z-300", "Bình")
    await register_zalo(user, phone="0931000300")
    account = Account.zalo("z-300")
    await open_exam(user)
    attempt = (await attempts_of(zbot.engine, account))[0].id

    # A doubled reply: both typed before question 2 arrived; only the first counts.
    await user.send_text("a")
    await user.send_text("c")
    refused = await user.wait_for(has("không được tính cho câu 2"))
    assert "trước khi câu 2 đến" in refused.text
    assert await answered(zbot.engine, attempt) == [(0, 0)]

    # Not an answer: a hint, nothing changes.
    for typed in ("d", "ab", "xin chào", "1"):
        await say(user, typed, "Vui lòng trả lời câu 2")
    assert await answered(zbot.engine, attempt) == [(0, 0)]

    # "b." answers question 2 (the question most recently sent).
    await say(user, "b.", "Câu 3/20")
    assert await answered(zbot.engine, attempt) == [(0, 0), (1, 1)]

    # The conversation's record of the question is lost (say, wiped by the console): a
    # letter answers nothing; the current question is shown again.
    assert zbot.process is not None
    async with zbot.process.service.uow() as uow:
        await uow.dialogues.clear(account)
        await uow.commit()
    again = await say(user, "C", "Câu 3/20")
    assert await answered(zbot.engine, attempt) == [(0, 0), (1, 1)]
    assert "⏱" in again.text
    await say(user, "C", "Câu 4/20")
    assert await answered(zbot.engine, attempt) == [(0, 0), (1, 1), (2, 2)]

    # After the deadline (the sweep or this reply closes the attempt): nothing answered.
    clock.advance(minutes=20, seconds=1)
    await user.send_text("a")
    closed = await user.wait_for(has("Đã hết thời gian làm bài"))
    assert "Lần thi 1:" in closed.text
    assert await answered(zbot.engine, attempt) == [(0, 0), (1, 1), (2, 2)]


async def test_deadline_that_passes_while_the_bot_is_down(
    zbot: ZaloRunner, zalo_api: FakeZaloApi, clock: ManualClock
):
    user = zalo_api.user("z-400", "Dũng")
    await register_zalo(user, phone="0931000400")
    account = Account.zalo("z-400")
    card = await open_exam(user)
    attempt = (await attempts_of(zbot.engine, account))[0].id
    await answer_all(zbot.engine, user, card, attempt, [True, True])
    await zbot.stop()
    clock.advance(minutes=30)
    mark = user.mark()
    await zbot.start()
    result = await user.wait_for(has("Đã hết thời gian làm bài"), since=mark)
    assert "2/20" in result.text and "còn 1 lần thi" in result.text
    rows = await attempts_of(zbot.engine, account)
    assert rows[0].status == "expired" and rows[0].correct_count == 2
    await say(user, "ketqua", "KẾT QUẢ")
    await asyncio.sleep(0.3)  # a few sweeps more: still one result message
    assert len([m for m in user.bot_messages() if "Đã hết thời gian làm bài" in m.text]) == 1
    # A letter now answers nothing (the attempt is over).
    await say(user, "a", "Đã hết giờ làm bài")
    rows = await attempts_of(zbot.engine, account)
    assert len(rows) == 1 and len(await answered(zbot.engine, attempt)) == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_webhook_with_its_secret(
    zalo_api: FakeZaloApi, rules: ContestRules, clock: ManualClock, db_url: str
):
    port = _free_port()
    url = f"http://127.0.0.1:{port}/zalo/duong-dan-bi-mat"
    runner = ZaloRunner(
        zalo_api,
        rules,
        clock,
        db_url,
        polling=False,
        zalo_webhook_url=url,
        zalo_webhook_secret="bi-mat-webhook-zalo",
        webhook_port=port,
    )
    await runner.start()
    try:
        assert zalo_api.webhook_url == url
        user = zalo_api.user("z-500", "Hà")
        await say(user, "/start", "kênh dự thi trên Zalo")
        update = {
            "event_name": "message.text.received",
            "message": {
                "message_id": "forged-1",
                "from": {"id": "z-500", "display_name": "Hà"},
                "chat": {"id": "z-500", "chat_type": "PRIVATE"},
                "date": 1,
                "text": "/dangky",
            },
        }
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"ok": True, "result": update}) as response:
                assert response.status == 403
            headers = {SECRET_HEADER: "sai-bi-mat-roi"}
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 403
            # A group message with the right secret: ignored, no reply anywhere.
            group = {
                **update,
                "message": {
                    **update["message"],  # type: ignore[dict-item]
                    "message_id": "group-1",
                    "chat": {"id": "z-500", "chat_type": "GROUP"},
                    "text": "xin chào cả nhóm",
                },
            }
            before = len(user.bot_messages())
            headers = {SECRET_HEADER: "bi-mat-webhook-zalo"}
            async with http.post(url, json=group, headers=headers) as response:
                assert response.status == 200
        await asyncio.sleep(0.2)
        assert len(user.bot_messages()) == before
    finally:
        await runner.stop()
