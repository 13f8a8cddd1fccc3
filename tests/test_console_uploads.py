"""Files sent in the chat, end to end through the fake Bot API: a good bank (added, then
confirmed), a bad one (every error by row and column, nothing written), units, a file whose
header says nothing, refusals (not CSV/XLSX, empty, over 5 MB), a replacing bank while round
1 is open (no attempt in progress and no score changes), contestants refused and audited."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from fakes.telegram import FakeBotApi, FakeMessage, FakeUser
from handlers.console import MAX_UPLOAD_BYTES as HANDLER_CAP
from storage import files
from storage import models as m
from tests.conftest import (
    ADMIN,
    SAMPLES,
    BotRunner,
    has,
    press,
    register_civil_servant,
    say,
)

HEADER = "topic,question,a,b,c,answer\n"


def engine_of(bot: BotRunner) -> AsyncEngine:
    from bot.app import runtime

    return runtime(bot.app).engine


async def count(bot: BotRunner, model: type[m.Base], *where: object) -> int:
    async with engine_of(bot).connect() as conn:
        stmt = select(func.count()).select_from(model)
        if where:
            stmt = stmt.where(*where)  # type: ignore[arg-type]
        return int(await conn.scalar(stmt) or 0)


async def pending(bot: BotRunner) -> int:
    """Requests waiting for a confirmation (files kept for the organiser's choice)."""
    return await count(bot, m.ContestStateRow, m.ContestStateRow.key.startswith("pending:"))


async def audit_rows(bot: BotRunner) -> list[tuple[str, str, str]]:
    async with engine_of(bot).connect() as conn:
        rows = await conn.execute(select(m.AuditRow).order_by(m.AuditRow.id))
        return [(r.actor, r.action, r.outcome) for r in rows]


async def send(user: FakeUser, name: str, data: bytes, expect: str) -> FakeMessage:
    await user.send_document(name, data)
    return await user.wait_for(has(expect))


def bank_csv(rows: list[str]) -> bytes:
    return (HEADER + "\n".join(rows) + "\n").encode("utf-8")


NEW_ROWS = [
    f"Chủ đề mới,Câu hỏi mới số {i} về dịch vụ công trực tuyến?,Có,Không,Tùy trường hợp,a"
    for i in range(3)
]


async def test_an_organiser_uploads_a_good_bank_and_confirms(
    console_bot: BotRunner, fake_api: FakeBotApi
):
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    before = await count(console_bot, m.QuestionRow)
    plan = await send(admin, "cau-hoi-bo-sung.csv", bank_csv(NEW_ROWS), "HỢP LỆ")
    assert "3 câu hỏi" in plan.text and "3 câu mới, 0 câu sửa, 0 câu giữ nguyên" in plan.text
    assert f"có {before + 3} câu đang dùng" in plan.text  # upsert
    assert f"{before} câu đang dùng không có trong tệp sẽ ngừng sử dụng" in plan.text
    assert await count(console_bot, m.QuestionRow) == before  # nothing yet
    confirm = await press(
        admin, "➕ Thêm/cập nhật", "Xác nhận thêm/cập nhật", message_id=plan.message_id
    )
    ok_data = confirm.inline_data["✅ Xác nhận"]
    done = await press(
        admin, "✅ Xác nhận", "Đã nhập ngân hàng câu hỏi", message_id=confirm.message_id
    )
    assert "3 câu mới" in done.text
    assert await count(console_bot, m.QuestionRow) == before + 3
    # The same confirmation again: nothing is imported twice.
    query = await admin.press_data(ok_data, done.message_id)
    again = await admin.wait_callback_answer(query)
    assert again.text is not None and "đã được nhập" in again.text
    assert await count(console_bot, m.QuestionRow) == before + 3
    audit = await audit_rows(console_bot)
    assert ("telegram:9001", "upload", "ok") in audit
    assert ("telegram:9001", "import_questions", "ok") in audit
    assert ("telegram:9001", "up_ok", "failed") in audit

    # The sample bank as XLSX: read exactly like the command line reads it.
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    text = (SAMPLES / "questions.csv").read_text(encoding="utf-8-sig")
    for record in csv.reader(io.StringIO(text)):
        sheet.append(record)
    buffer = io.BytesIO()
    book.save(buffer)
    xlsx = await send(admin, "ngan-hang.xlsx", buffer.getvalue(), "HỢP LỆ")
    assert f"{before} câu hỏi" in xlsx.text and f"{before} câu giữ nguyên" in xlsx.text


async def test_a_bad_bank_lists_every_error_and_writes_nothing(
    console_bot: BotRunner, fake_api: FakeBotApi
):
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    before = await count(console_bot, m.QuestionRow)
    rows = [
        NEW_ROWS[0],
        "Chủ đề,Câu hỏi có đáp án sai?,Một,Hai,Ba,d",
        "Chủ đề,,Một,Hai,Ba,a",
        "Chủ đề,Câu hỏi trùng phương án?,Một,một,Ba,b",
    ]
    reply = await send(admin, "cau-hoi.csv", bank_csv(rows), "bị từ chối")
    assert "không có dữ liệu nào được ghi (3 lỗi)" in reply.text
    assert "Dòng 3, cột “answer”: đáp án phải là a, b hoặc c (giá trị: “d”)" in reply.text
    assert "Dòng 4, cột “question”: ô trống" in reply.text
    assert "Dòng 5, cột “a”: các phương án trùng nhau" in reply.text
    assert await count(console_bot, m.QuestionRow) == before
    assert await pending(console_bot) == 0  # nothing kept either
    assert ("telegram:9001", "upload", "failed") in await audit_rows(console_bot)

    # A long list: the first 30 and how many more.
    many = [f"Chủ đề,Câu {i} sai đáp án?,Một,Hai,Ba,x" for i in range(45)]
    reply = await send(admin, "nhieu-loi.csv", bank_csv(many), "bị từ chối")
    assert "(45 lỗi)" in reply.text and "… và 15 lỗi khác." in reply.text
    assert reply.text.count("Dòng ") == 30 and len(reply.text) < 4096


async def test_refused_files_say_why(console_bot: BotRunner, fake_api: FakeBotApi):
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    reply = await send(admin, "cau-hoi.pdf", b"%PDF-1.4", "bị từ chối")
    assert "chỉ nhận tệp .csv hoặc .xlsx" in reply.text
    reply = await send(admin, "trong.csv", b"", "bị từ chối")
    assert "tệp rỗng" in reply.text
    assert HANDLER_CAP == files.MAX_UPLOAD_BYTES == 5 * 1024 * 1024
    big = HEADER.encode() + b"x" * files.MAX_UPLOAD_BYTES
    reply = await send(admin, "qua-lon.csv", big, "Tệp quá lớn")
    assert "tối đa 5 MB" in reply.text
    assert await pending(console_bot) == 0


async def test_units_and_a_file_whose_header_says_nothing(
    console_bot: BotRunner, fake_api: FakeBotApi
):
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    units = (
        "code,name,kind,staff_count\nP-MOI,UBND phường Mới,phuong,40\n"
        "P-CATLINH,UBND phường Cát Linh,phuong,30\n"
    )
    before = await count(console_bot, m.UnitRow)
    plan = await send(admin, "don-vi.csv", units.encode(), "DANH SÁCH ĐƠN VỊ HỢP LỆ")
    assert "2 đơn vị (1 đơn vị mới, 1 đơn vị cập nhật)" in plan.text
    await press(admin, "✅ Xác nhận", "Đã nhập danh sách đơn vị", message_id=plan.message_id)
    assert await count(console_bot, m.UnitRow) == before + 1
    assert ("telegram:9001", "import_units", "ok") in await audit_rows(console_bot)

    odd = b"ma,ten\nX,Y\n"
    ask = await send(admin, "khong-ro.csv", odd, "Không nhận ra loại tệp")
    reply = await press(admin, "📚 Ngân hàng câu hỏi", "bị từ chối", message_id=ask.message_id)
    assert "Dòng 1, cột “topic”: thiếu cột" in reply.text
    ask = await send(admin, "khong-ro-2.csv", odd, "Không nhận ra loại tệp")
    await press(admin, "Hủy", "không có dữ liệu nào được ghi", message_id=ask.message_id)
    assert await pending(console_bot) == 0


async def test_replacing_the_bank_while_round_one_is_open_changes_no_attempt(
    console_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    from tests.test_console_fixes import answer, attempts_of, items_of, open_exam, right

    bot = console_bot
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    done_user = fake_api.user(9301, first_name="Đã thi")
    await register_civil_servant(done_user, phone="0932000001")
    card = await open_exam(done_user)
    finished = (await attempts_of(bot, done_user.id))[0].id
    await answer(bot, done_user, card, finished, right)
    busy = fake_api.user(9302, first_name="Đang thi")
    await register_civil_servant(busy, phone="0932000002")
    busy_card = await open_exam(busy)
    running = (await attempts_of(bot, busy.id))[0].id
    await answer(bot, busy, busy_card, running, right, count=3)
    drawn = [qid for qid, _, _ in await items_of(bot, finished)]
    async with engine_of(bot).connect() as conn:
        bank = {
            r.id: r for r in await conn.execute(select(m.QuestionRow).order_by(m.QuestionRow.id))
        }
    # The file: a drawn question with another key, the other questions the finished attempt
    # drew as they are, and 20 new ones; every other question of the bank is left out.
    changed = bank[drawn[0]]
    records = [
        [
            changed.topic,
            changed.text,
            changed.option_a,
            changed.option_b,
            changed.option_c,
            "abc"[(changed.answer + 1) % 3],
        ]
    ]
    for qid in drawn[1:]:
        q = bank[qid]
        records.append([q.topic, q.text, q.option_a, q.option_b, q.option_c, "abc"[q.answer]])
    records += [
        ["Chủ đề mới", f"Câu hỏi thay thế số {i}?", "Có", "Không", "Chưa rõ", "abc"[i % 3]]
        for i in range(20)
    ]
    out = io.StringIO()
    csv.writer(out).writerows([HEADER.strip().split(","), *records])
    plan = await send(admin, "thay-the.csv", out.getvalue().encode(), "HỢP LỆ")
    assert "1 câu đã có trong bài thi nhưng tệp ghi đáp án hoặc phương án khác" in plan.text
    assert f"#{changed.id}" in plan.text and "/suacau" in plan.text
    confirm = await press(admin, "♻️ Thay toàn bộ", "thay toàn bộ", message_id=plan.message_id)
    withdrawn = len(bank) - 20
    assert f"{withdrawn} câu đang dùng không có trong tệp" in confirm.text
    done = await press(admin, "✅ Xác nhận", "Đã nhập ngân hàng", message_id=confirm.message_id)
    assert f"{withdrawn} câu ngừng sử dụng" in done.text and "1 câu đã dùng" in done.text

    async with engine_of(bot).connect() as conn:
        key = await conn.scalar(select(m.QuestionRow.answer).where(m.QuestionRow.id == changed.id))
        active = await conn.scalar(select(func.count()).where(m.QuestionRow.active.is_(True)))
    assert key == changed.answer  # kept: /suacau is the way to change it
    assert active == 40
    rows_after = await attempts_of(bot, done_user.id)
    assert [r.correct_count for r in rows_after] == [20]
    # The attempt in progress goes on with its own questions, withdrawn ones included.
    resumed = await say(busy, "/thi", "Tiếp tục bài thi")
    assert "Câu 4/20" in resumed.text
    last = await answer(bot, busy, resumed, running, right, count=17)
    assert "20/20" in last.text


async def test_contestants_and_focal_persons_are_refused_and_audited(
    console_bot: BotRunner, fake_api: FakeBotApi
):
    user = fake_api.user(9311, first_name="Thí sinh")
    await register_civil_servant(user, phone="0932000011")
    before = await count(console_bot, m.QuestionRow)
    await send(user, "cau-hoi.csv", bank_csv(NEW_ROWS), "chỉ nhận tin nhắn văn bản")
    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    focal = fake_api.user(9312, first_name="Đầu mối")
    await register_civil_servant(focal, phone="0932000012")
    await say(admin, "/daumoi p-catlinh 0932000012", "đầu mối")
    await send(focal, "cau-hoi.csv", bank_csv(NEW_ROWS), "chỉ dành cho Ban Tổ chức")
    query = await user.press_data("a:up_ok:AAAAAAAAAAA:r", user.bot_messages()[-1].message_id)
    await user.wait_callback_answer(query)
    audit = await audit_rows(console_bot)
    assert ("telegram:9311", "upload", "refused") in audit
    assert ("telegram:9312", "upload", "refused") in audit
    assert ("telegram:9311", "up_ok", "refused") in audit
    assert await count(console_bot, m.QuestionRow) == before
