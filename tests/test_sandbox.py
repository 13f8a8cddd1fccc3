"""The sandbox without a browser: its clock, the "clock moved" hook of the bot, and the page's
JSON API (what it refuses: forged buttons, other chats' files, time going back)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, FormData
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import clock_moved, runtime
from bot.config import load_rules
from contest.clock import ManualClock, OffsetClock
from fakes.telegram import FakeBotApi
from sandbox.schedule import contest_file, write_contest_file
from sandbox.server import ORGANISER_ID, Sandbox
from storage import models as m
from tests.conftest import BotRunner, has, pg_engine, register_civil_servant, say


def test_the_offset_clock_runs_with_the_wall_clock_and_only_moves_forward():
    base = ManualClock(datetime(2026, 1, 1, 8, 0, tzinfo=UTC))
    clock = OffsetClock(base)
    assert clock.now() == base.now()
    base.advance(seconds=30)  # time passes
    assert clock.now() == datetime(2026, 1, 1, 8, 0, 30, tzinfo=UTC)
    assert clock.advance(minutes=5) == datetime(2026, 1, 1, 8, 5, 30, tzinfo=UTC)
    assert clock.set(datetime(2026, 1, 2, 8, 0, tzinfo=UTC)) == datetime(2026, 1, 2, 8, tzinfo=UTC)
    with pytest.raises(ValueError):
        clock.advance(minutes=-1)
    with pytest.raises(ValueError):
        clock.set(datetime(2026, 1, 1, 9, 0, tzinfo=UTC))
    assert clock.offset == timedelta(days=1) - timedelta(seconds=30)


def test_the_generated_contest_file_opens_round_1_now(tmp_path: Path):
    now = datetime(2026, 11, 30, 10, 26, 45, tzinfo=UTC)  # 17:26 in Hà Nội
    rules = load_rules(write_contest_file(tmp_path, now))
    assert rules.round1.window.opens <= now < rules.round1.window.closes
    assert rules.round1.window.closes - now > timedelta(days=13)
    assert rules.round1.questions == 20 and rules.round1.minutes == 20
    assert rules.round1.attempts == 2
    assert rules.round2.round.window.opens >= rules.round1.window.closes
    assert "2026-11-30T17:25:00" in contest_file(now)


async def test_moving_the_clock_closes_an_overdue_attempt_at_once(
    fake_api: FakeBotApi, seeded: AsyncEngine, database_url: str, tmp_path: Path
):
    """The deadline timer waits a wall-clock delay; after the clock jumps, only the hook
    brings the result now (the sweep here runs once a minute)."""
    clock = OffsetClock()
    rules = load_rules(write_contest_file(tmp_path, clock.now()))
    bot = BotRunner(fake_api, rules, clock, lambda: pg_engine(database_url))  # type: ignore[arg-type]
    bot.settings = bot.settings.model_copy(update={"sweep_seconds": 60.0})
    await bot.start()
    try:
        user = fake_api.user(5101)
        await register_civil_servant(user, phone="0915000001")
        intro = await say(user, "/thi", "Bắt đầu")
        await user.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
        await user.wait_for(has("Câu 1/20"))
        await asyncio.sleep(0.3)  # the first sweep (at start-up) is over
        clock.advance(minutes=21)
        with pytest.raises(TimeoutError):  # the timer still waits its 20 real minutes
            await user.wait_for_new_message(1.0, has("Đã hết thời gian làm bài"))
        await clock_moved(bot.app)
        result = await user.wait_for_new_message(5.0, has("Đã hết thời gian làm bài"))
        assert "0/20" in result.text
        assert runtime(bot.app).deadlines.armed == 0
    finally:
        await bot.stop()


# ------------------------------------------------------------------ the page's API


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    box = Sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}",
        config=write_contest_file(tmp_path, datetime.now(UTC)),
        port=0,
    )
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


async def call(
    session: ClientSession, box: Sandbox, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {}
    if isinstance(body, FormData):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    async with session.request(method, box.url + path, **kwargs) as response:
        return response.status, await response.json()


async def test_the_page_api_plays_a_persona_and_refuses_what_a_telegram_app_cannot_do(
    sandbox: Sandbox,
):
    async with ClientSession() as session:
        status, state = await call(session, sandbox, "GET", "/api/state")
        assert status == 200
        assert [p["role"] for p in state["personas"]] == ["contestant", "organiser"]
        assert len(state["units"]) >= 21  # the sample units: the 21 wards and more

        status, persona = await call(
            session, sandbox, "POST", "/api/personas", {"name": "  Hoàng   Lan ", "role": "focal"}
        )
        assert status == 400 and persona["error"] == "Hãy chọn đơn vị của đầu mối."
        unit = state["units"][0]
        status, persona = await call(
            session,
            sandbox,
            "POST",
            "/api/personas",
            {"name": "  Hoàng   Lan ", "role": "focal", "unit_code": unit["code"]},
        )
        assert status == 200 and persona["name"] == "Hoàng Lan"
        assert persona["unit_name"] == unit["name"]
        pid = persona["id"]
        # A focal person gets the console's /thongke in their menu.
        status, chat = await call(session, sandbox, "GET", f"/api/personas/{pid}/chat")
        assert "thongke" in [c["command"] for c in chat["commands"]]

        status, _ = await call(
            session, sandbox, "POST", f"/api/personas/{pid}/text", {"text": "/start"}
        )
        assert status == 200
        user = sandbox.api.user(pid)
        greeting = await user.wait_for(has("Xin chào"))
        status, chat = await call(session, sandbox, "GET", f"/api/personas/{pid}/chat")
        record = next(m for m in chat["messages"] if m["id"] == greeting.message_id)
        assert record["from_bot"] and record["entities"]  # formatting as entities, not tags
        assert "<b>" not in record["text"]

        # A button that is not on the message is refused, and nothing reaches the bot.
        updates = sandbox.api._next_update_id
        status, body = await call(
            session,
            sandbox,
            "POST",
            f"/api/personas/{pid}/press",
            {"message_id": greeting.message_id, "data": "a:forged"},
        )
        assert status == 400 and body["error"] == "Nút này không còn trên tin nhắn."
        assert sandbox.api._next_update_id == updates
        data = next(iter(greeting.inline_data.values()))
        status, body = await call(
            session,
            sandbox,
            "POST",
            f"/api/personas/{pid}/press",
            {"message_id": greeting.message_id, "data": data},
        )
        assert status == 200 and set(body) == {"text", "alert"}

        # Time only goes forward.
        status, body = await call(session, sandbox, "POST", "/api/clock", {"minutes": -5})
        assert status == 400 and "tiến lên" in body["error"]
        before = sandbox.clock.now()
        status, body = await call(session, sandbox, "POST", "/api/clock", {"minutes": 60})
        assert status == 200 and sandbox.clock.now() - before >= timedelta(minutes=60)
        assert datetime.fromisoformat(body["now"]) >= before + timedelta(minutes=60)
        status, body = await call(session, sandbox, "POST", "/api/clock", {"to": "không phải ngày"})
        assert status == 400 and "không hợp lệ" in body["error"]

        status, body = await call(session, sandbox, "GET", "/api/personas/123/chat")
        assert status == 404 and body["error"] == "Không có vai này."
        async with session.get(sandbox.url + "/static/..%2Fserver.py") as response:
            assert response.status == 404


async def test_an_organiser_uploads_in_the_page_and_downloads_only_their_own_files(
    sandbox: Sandbox,
):
    admin = sandbox.api.user(ORGANISER_ID)
    async with ClientSession() as session:
        form = FormData()
        form.add_field(
            "file",
            "topic,question,a,b,c,answer\nDiễn tập,Câu hỏi thử số một?,Có,Không,Tùy,a\n".encode(),
            filename="bo-sung.csv",
            content_type="text/csv",
        )
        status, _ = await call(
            session, sandbox, "POST", f"/api/personas/{ORGANISER_ID}/document", form
        )
        assert status == 200
        plan = await admin.wait_for(has("HỢP LỆ"))
        assert "1 câu hỏi" in plan.text

        await admin.send_text("/xuat")
        export = await admin.wait_for(lambda m: m.document is not None, timeout=60)
        assert export.document is not None
        path = f"/api/personas/{ORGANISER_ID}/files/{export.document.file_id}"
        async with session.get(sandbox.url + path) as response:
            assert response.status == 200
            assert "attachment" in response.headers["Content-Disposition"]
            assert await response.read() == export.document.data
        # Another persona cannot fetch it, nor the file the organiser uploaded.
        other = next(p for p in sandbox.personas if p != ORGANISER_ID)
        async with session.get(
            f"{sandbox.url}/api/personas/{other}{path[path.index('/files') :]}"
        ) as response:
            assert response.status == 404
        uploaded = next(m for m in admin.messages if not m.from_bot and m.document is not None)
        assert uploaded.document is not None
        async with session.get(
            f"{sandbox.url}/api/personas/{ORGANISER_ID}/files/{uploaded.document.file_id}"
        ) as response:
            assert response.status == 404

        # The event stream sends what changed since the id the page last saw.
        async with session.get(
            f"{sandbox.url}/api/personas/{ORGANISER_ID}/events",
            headers={"Last-Event-ID": str(export.seq - 1)},
        ) as response:
            assert response.headers["Content-Type"] == "text/event-stream"
            event = b""
            while not event.endswith(b"\n\n"):
                event += await asyncio.wait_for(response.content.readline(), 5)
        lines = event.decode().splitlines()
        assert lines[0].startswith("id: ")
        sent = json.loads(lines[1].removeprefix("data: "))
        assert [m["id"] for m in sent["messages"]] == [export.message_id]
        assert sent["messages"][0]["document"]["name"].endswith(".xlsx")


async def test_a_kept_database_brings_back_the_personas_of_an_earlier_run(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'kept.db'}"
    config = write_contest_file(tmp_path, datetime.now(UTC))
    first = Sandbox(database_url=url, config=config, port=0)
    await first.start()
    try:
        unit_code = first.units[0][0]
        focal = await first.create_persona("Đầu mối Lan", "focal", unit_code)
        deputy = await first.create_persona("Phó ban Minh", "organiser", None)
        walker = await first.create_persona("Chưa làm gì", "contestant", None)
        zalo_organiser = await first.create_persona("Ban tổ chức Zalo", "organiser", None, "zalo")
        user = first.api.user(first.personas[700_101].id)
        await register_civil_servant(user, name="Nguyễn Văn An", phone="0900700101")
    finally:
        await first.stop()
    again = Sandbox(database_url=url, config=config, port=0)
    await again.start()
    try:
        restored = {p.id: (p.name, p.role, p.unit_code) for p in again.personas.values()}
        assert restored[focal.id] == (f"Đầu mối đơn vị {focal.id}", "focal", unit_code)
        assert restored[deputy.id] == (f"Ban Tổ chức {deputy.id}", "organiser", None)
        assert restored[700_101] == ("Nguyễn Văn An", "contestant", None)
        assert walker.id not in restored  # nothing of theirs was kept
        assert restored[zalo_organiser.id][1] == "organiser"
        assert again.personas[zalo_organiser.id].channel == "zalo"
    finally:
        await again.stop()


async def test_a_zalo_persona_registers_and_answers_a_question_through_the_page_api(
    sandbox: Sandbox,
):
    """The bot serves Zalo too in the sandbox (the Zalo fake, a made-up token): a Zalo
    persona types everything, and its chat is plain text, live on the event stream."""
    assert runtime(sandbox.app).zalo is not None
    assert sandbox.zalo.url.startswith("http://127.0.0.1:")
    async with ClientSession() as session:

        async def say(pid: int, text: str, expect: str, since: int) -> dict[str, Any]:
            status, _ = await call(
                session, sandbox, "POST", f"/api/personas/{pid}/text", {"text": text}
            )
            assert status == 200
            for _ in range(100):
                status, chat = await call(session, sandbox, "GET", f"/api/personas/{pid}/chat")
                found = [
                    m
                    for m in chat["messages"]
                    if m["from_bot"] and m["seq"] > since and expect in m["text"]
                ]
                if found:
                    return dict(found[-1])
                await asyncio.sleep(0.1)
            raise AssertionError(f"no {expect!r} after {text!r}: {chat['messages'][-3:]}")

        async def pick(pid: int, message: dict[str, Any], label: str, expect: str) -> Any:
            line = next(x for x in message["text"].splitlines() if label in x)
            return await say(pid, line.split(".")[0], expect, message["seq"])

        status, persona = await call(
            session,
            sandbox,
            "POST",
            "/api/personas",
            {"name": "Lê <b>Zalo</b>", "role": "contestant", "channel": "telegram-x"},
        )
        assert status == 400 and "Kênh không hợp lệ" in persona["error"]
        status, persona = await call(
            session,
            sandbox,
            "POST",
            "/api/personas",
            {"name": "Lê <b>Zalo</b>", "role": "contestant", "channel": "zalo"},
        )
        assert status == 200 and persona["channel"] == "zalo"
        pid, phone = persona["id"], persona["phone"]
        status, state = await call(session, sandbox, "GET", "/api/state")
        assert {p["id"]: p["channel"] for p in state["personas"]}[pid] == "zalo"

        # The event stream of the Zalo chat, open before anything is said.
        events = await session.get(f"{sandbox.url}/api/personas/{pid}/events")
        assert events.headers["Content-Type"] == "text/event-stream"

        welcome = await say(pid, "/start", "kênh dự thi trên Zalo", 0)
        assert welcome["buttons"] == [] and welcome["entities"] == []
        assert not welcome["edited"]
        assert "Xin chào Lê <b>Zalo</b>!" in welcome["text"]  # plain text: the name as typed
        consent = await pick(pid, welcome, "Đăng ký dự thi", "Tôi đồng ý")
        await pick(
            pid,
            consent,
            "Tôi đồng ý",
            "họ và tên",
        )
        await say(pid, "Lê Văn Zalo", "ngày sinh", consent["seq"])
        ask = await say(pid, "12/12/1988", "số điện thoại di động", consent["seq"])
        group = await say(pid, phone, "tư cách nào", ask["seq"])
        kind = await pick(pid, group, "Công dân", "phường")
        found = await say(pid, "kim lien", "Kết quả tìm kiếm", kind["seq"])
        summary = await pick(pid, found, "Kim Liên", "kiểm tra lại")
        await pick(pid, summary, "Xác nhận đăng ký", "đăng ký dự thi thành công")

        intro = await say(pid, "thi", "gõ 1 để bắt đầu", summary["seq"])
        card = await pick(pid, intro, "Bắt đầu làm bài", "Câu 1/20")
        assert "\nA. " in card["text"] and "⏱ Còn lại" in card["text"]
        # No buttons on Zalo: a press or a contact card is refused, nothing reaches the bot.
        status, body = await call(
            session, sandbox, "POST", f"/api/personas/{pid}/press", {"message_id": 1, "data": "x"}
        )
        assert status == 400 and "gõ câu trả lời" in body["error"]
        status, body = await call(session, sandbox, "POST", f"/api/personas/{pid}/contact", {})
        assert status == 400 and "gõ số điện thoại" in body["error"]
        second = await say(pid, "b.", "Câu 2/20", card["seq"])
        assert second["seq"] > card["seq"]

        # The event stream sent the same messages as they came, as plain text.
        seen: list[dict[str, Any]] = []
        while not any("Câu 2/20" in m["text"] for m in seen):
            line = await asyncio.wait_for(events.content.readline(), 5)
            if line.startswith(b"data: "):
                seen.extend(json.loads(line[6:])["messages"])
        assert [m["seq"] for m in seen] == sorted(m["seq"] for m in seen)
        assert any(m["text"] == phone and not m["from_bot"] for m in seen)
        events.close()

        # An organiser on Zalo: promoted by the sandbox's organiser, the console answers.
        status, organiser = await call(
            session,
            sandbox,
            "POST",
            "/api/personas",
            {"name": "Phó ban Zalo", "role": "organiser", "channel": "zalo"},
        )
        assert status == 200 and organiser["channel"] == "zalo"
        await say(organiser["id"], "/thongke", "THỐNG KÊ THAM GIA VÒNG 1", 0)

    # The answer counted: the attempt's first item has a choice (B), through the real bot.
    engine = runtime(sandbox.app).engine
    async with engine.connect() as conn:
        person = (
            await conn.execute(
                select(m.AccountRow.person_id).where(
                    m.AccountRow.channel == "zalo", m.AccountRow.external_id == str(pid)
                )
            )
        ).scalar_one()
        choices = (
            await conn.execute(
                select(m.AttemptItemRow.position)
                .join(m.AttemptRow, m.AttemptRow.id == m.AttemptItemRow.attempt_id)
                .where(m.AttemptRow.person_id == person, m.AttemptItemRow.choice.is_not(None))
            )
        ).all()
    assert [row[0] for row in choices] == [0]
