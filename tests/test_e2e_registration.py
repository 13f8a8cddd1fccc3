"""Registration end to end: the real bot, over HTTP, against the fake Bot API server."""

from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from pathlib import Path

import pytest
import segno
from sqlalchemy import func, select

from fakes.telegram import FakeBotApi, FakeUser
from storage import models as m
from tests.conftest import (
    BotRunner,
    has,
    press,
    register_citizen,
    register_civil_servant,
    say,
)
from tests.test_cli import Cli


async def count_persons(bot: BotRunner) -> int:
    from bot.app import runtime

    async with runtime(bot.app).engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(m.PersonRow))).scalar())


async def test_start_greets_and_offers_rules_and_guide(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(1001, first_name="An")
    welcome = await say(user, "/start", "Xin chào")
    assert "cải cách hành chính" in welcome.text
    assert "20 câu hỏi" in welcome.text and "20 phút" in welcome.text
    labels = [label for row in welcome.buttons for label in row]
    assert "📜 Thể lệ" in labels and "❓ Hướng dẫn" in labels
    rules = await press(user, "📜 Thể lệ", "THỂ LỆ")
    assert "Giải Nhất: 01 giải, mỗi giải 3.000.000 đồng" in rules.text
    assert "Giải Khuyến khích: 04 giải, mỗi giải 500.000 đồng" in rules.text
    assert "01 lãnh đạo đơn vị" in rules.text and "30%" in rules.text
    await press(user, "❓ Hướng dẫn", "HƯỚNG DẪN")


async def test_start_with_deep_link_payload_begins_registration(
    bot: BotRunner, fake_api: FakeBotApi
):
    user = fake_api.user(1002)
    await user.send_text("/start dangky")
    await user.wait_for(has("Tôi đồng ý"))


async def test_full_civil_servant_registration_and_profile(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(1003, first_name="An")
    done = await register_civil_servant(user, name="Nguyễn Văn An", leader=True)
    assert "Nguyễn Văn An" in done.text
    profile = await say(user, "/hoso", "HỒ SƠ")
    assert "Nguyễn Văn An" in profile.text
    assert "25/03/1990" in profile.text
    assert "+84912345678" in profile.text
    assert "UBND phường Cát Linh" in profile.text
    assert "Lãnh đạo đơn vị" in profile.text
    assert await count_persons(bot) == 1
    # A second /dangky does not register twice.
    await say(user, "/dangky", "Bạn đã đăng ký dự thi.")
    assert await count_persons(bot) == 1


async def test_citizen_registration_with_ward(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(1004)
    await register_citizen(user)
    profile = await say(user, "/hoso", "HỒ SƠ")
    assert "Công dân" in profile.text and "Phường: phường Kim Liên" in profile.text


async def test_summary_lets_a_field_be_corrected(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(1005)
    await say(user, "/dangky", "Tôi đồng ý")
    await press(user, "✅ Tôi đồng ý", "họ và tên")
    await say(user, "Lê Văn Sai", "ngày sinh")
    await say(user, "02/02/1988", "Chia sẻ số điện thoại")
    await user.share_contact("0900000005")
    await user.wait_for(has("tư cách nào"))
    await press(user, "👤 Công dân", "phường")
    await press(user, "phường Cát Linh", "kiểm tra lại")
    await press(user, "✏️ Sửa họ tên", "họ và tên")
    summary = await say(user, "Lê Văn Đúng", "kiểm tra lại")
    assert "Lê Văn Đúng" in summary.text and "Lê Văn Sai" not in summary.text
    await user.press("✅ Xác nhận đăng ký")
    await user.wait_for(has("thành công"))
    profile = await say(user, "/hoso", "HỒ SƠ")
    assert "Lê Văn Đúng" in profile.text


async def test_name_with_html_characters_and_emoji_is_shown_as_typed(
    bot: BotRunner, fake_api: FakeBotApi
):
    user = fake_api.user(1006)
    name = "Phạm <b>Minh</b> & Co 😀"
    done = await register_civil_servant(user, name=name, phone="0911111116")
    assert name in done.text
    profile = await say(user, "/hoso", "HỒ SƠ")
    assert name in profile.text


async def test_bad_birth_dates_are_refused_and_change_nothing(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(1007)
    await say(user, "/dangky", "Tôi đồng ý")
    await press(user, "✅ Tôi đồng ý", "họ và tên")
    await say(user, "Đỗ Thị Hoa", "ngày sinh")
    await say(user, "31/02/1990", "Ngày sinh không tồn tại")
    await say(user, "01/01/2030", "không thể ở tương lai")
    await say(user, "hôm qua", "chưa đúng định dạng")
    # Still asking for the birth date: a valid one moves on.
    await say(user, "1/2/1990", "Chia sẻ số điện thoại")


async def test_citizen_under_18_is_refused(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(1008)
    await say(user, "/dangky", "Tôi đồng ý")
    await press(user, "✅ Tôi đồng ý", "họ và tên")
    await say(user, "Vũ Minh Khôi", "ngày sinh")
    await say(user, "06/08/2006", "Chia sẻ số điện thoại")  # 17 on 05/08/2024
    await user.share_contact("0900000008")
    await user.wait_for(has("tư cách nào"))
    refusal = await user.press("👤 Công dân")
    answer = await user.wait_callback_answer(refusal)
    assert answer.text is not None and "đủ 18 tuổi" in answer.text
    assert await count_persons(bot) == 0


async def test_someone_elses_contact_card_is_refused(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(1009)
    await say(user, "/dangky", "Tôi đồng ý")
    await press(user, "✅ Tôi đồng ý", "họ và tên")
    await say(user, "Hoàng Văn Nam", "ngày sinh")
    await say(user, "01/01/1980", "Chia sẻ số điện thoại")
    await user.share_contact("0900000099", user_id=424242)
    await user.wait_for(has("không phải số điện thoại của tài khoản"))
    await user.share_contact("0900000098", user_id=None)
    await user.wait_for(has("không phải số điện thoại của tài khoản"))
    # Typing the number instead of sharing it is refused too.
    await say(user, "0900000099", "bấm nút “Chia sẻ số điện thoại”")
    await user.share_contact("0900000009")
    await user.wait_for(has("tư cách nào"))


async def test_text_where_a_button_is_expected(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(1010)
    await say(user, "/dangky", "Tôi đồng ý")
    await say(user, "đồng ý", "chọn bằng các nút")
    await user.wait_for(has("Tôi đồng ý"))


async def test_second_account_with_the_same_phone_is_refused(bot: BotRunner, fake_api: FakeBotApi):
    first = fake_api.user(1011)
    await register_civil_servant(first, phone="0933333333")
    second = fake_api.user(1012)
    await say(second, "/dangky", "Tôi đồng ý")
    await press(second, "✅ Tôi đồng ý", "họ và tên")
    await say(second, "Người Thứ Hai", "ngày sinh")
    await say(second, "01/01/1985", "Chia sẻ số điện thoại")
    await second.share_contact("+84 933 333 333")
    await second.wait_for(has("đã được dùng để đăng ký"))
    assert await count_persons(bot) == 1


async def test_registration_survives_a_restart(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(1013)
    await say(user, "/dangky", "Tôi đồng ý")
    await press(user, "✅ Tôi đồng ý", "họ và tên")
    await say(user, "Đinh Văn Bền", "ngày sinh")
    await bot.restart()
    await say(user, "03/03/1993", "Chia sẻ số điện thoại")


async def test_forged_registration_button_does_nothing(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(1014)
    prompt = await say(user, "/dangky", "Tôi đồng ý")
    query = await user.press_data("r:unit:999999", prompt.message_id)
    answer = await user.wait_callback_answer(query)
    assert answer.text == "Nút này không còn hiệu lực. Vui lòng dùng tin nhắn mới nhất."
    query = await user.press_data("r:group:hacker", prompt.message_id)
    answer = await user.wait_callback_answer(query)
    assert answer.text == "Nút này không còn hiệu lực. Vui lòng dùng tin nhắn mới nhất."


async def test_unknown_command_and_sticker_get_a_hint(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(1015)
    await say(user, "/xyz", "không có lệnh này")
    await user.send_document("anh.jpg", b"\xff\xd8\xff", mime_type="image/jpeg")
    await user.wait_for(has("chỉ nhận tin nhắn văn bản"))


async def test_personal_data_stays_out_of_the_logs(
    bot: BotRunner, fake_api: FakeBotApi, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    user = fake_api.user(1016)
    await register_civil_servant(user, phone="0977123456", birth="14/07/1987")
    await say(user, "/hoso", "HỒ SƠ")
    second = fake_api.user(1017)
    await say(second, "/dangky", "Tôi đồng ý")
    await press(second, "✅ Tôi đồng ý", "họ và tên")
    await say(second, "Người Khác", "ngày sinh")
    await say(second, "14/07/1987", "Chia sẻ số điện thoại")
    await second.share_contact("0977123456")
    await second.wait_for(has("đã được dùng"))
    assert caplog.records, "the bot logs something at INFO"
    for secret in ("977123456", "14/07/1987", "1987-07-14"):
        assert secret not in caplog.text


# ------------------------------------------------------------------ rough edges (issue 9)


async def reach_group_step(user: FakeUser, *, name: str, birth: str, phone: str) -> None:
    await say(user, "/dangky", "Tôi đồng ý")
    await press(user, "✅ Tôi đồng ý", "họ và tên")
    await say(user, name, "ngày sinh")
    await say(user, birth, "Chia sẻ số điện thoại")
    await user.share_contact(phone)
    await user.wait_for(has("tư cách nào"))


async def test_a_mistyped_birth_year_is_corrected_by_typing_it_at_the_group_step(
    bot: BotRunner, fake_api: FakeBotApi
):
    """2015 typed for 1985: refused as a citizen, with the fixes offered right there; the
    corrected date typed at that point is understood as a correction."""
    user = fake_api.user(1020)
    await reach_group_step(user, name="Phan Văn Tâm", birth="12/05/2015", phone="0900000020")
    query = await user.press("👤 Công dân")
    answer = await user.wait_callback_answer(query)
    assert answer.text is not None and "đủ 18 tuổi" in answer.text
    refusal = await user.wait_for(has("đủ 18 tuổi"))
    assert "12/05/2015" in refusal.text
    labels = [label for row in refusal.buttons for label in row]
    assert "✏️ Sửa ngày sinh" in labels and "✏️ Sửa họ tên" in labels
    fixed = await say(user, "12/05/1985", "Đã sửa ngày sinh")
    assert "12/05/1985" in fixed.text
    await user.wait_for(has("tư cách nào"))
    await press(user, "👤 Công dân", "phường")
    await press(user, "phường Cát Linh", "kiểm tra lại")
    await user.press("✅ Xác nhận đăng ký")
    await user.wait_for(has("thành công"))
    profile = await say(user, "/hoso", "HỒ SƠ")
    assert "12/05/1985" in profile.text and "Công dân" in profile.text


async def test_the_under_age_refusal_offers_the_birth_date_fix_and_stays_in_the_chat(
    bot: BotRunner, fake_api: FakeBotApi
):
    user = fake_api.user(1021)
    await reach_group_step(user, name="Lý Thị Mai", birth="01/01/2015", phone="0900000021")
    await user.press("👤 Công dân")
    refusal = await user.wait_for(has("đủ 18 tuổi"))
    assert refusal.from_bot and not refusal.deleted
    # /dangky at this point: the same step, with its fixes.
    group = await say(user, "/dangky", "tư cách nào")
    assert "✏️ Sửa ngày sinh" in [label for row in group.buttons for label in row]
    await user.press("✏️ Sửa ngày sinh", message_id=refusal.message_id)
    await user.wait_for(has("ngày sinh"))
    await say(user, "01/01/1985", "tư cách nào")
    await press(user, "👤 Công dân", "phường")
    await press(user, "phường Cát Linh", "kiểm tra lại")
    await user.press("✅ Xác nhận đăng ký")
    await user.wait_for(has("thành công"))
    assert await count_persons(bot) == 1
    # The refusal is still there, as it was said.
    assert "đủ 18 tuổi" in user.message(refusal.message_id).text


async def test_other_fields_can_be_fixed_from_the_group_step(bot: BotRunner, fake_api: FakeBotApi):
    user = fake_api.user(1022)
    await reach_group_step(user, name="Tên Gõ Nhầm", birth="02/02/1982", phone="0900000022")
    await press(user, "✏️ Sửa họ tên", "họ và tên")
    await say(user, "Tên Đã Sửa", "tư cách nào")
    await press(user, "🏛 Cán bộ", "thuộc khối nào")
    await press(user, "UBND phường", "Chọn")
    await press(user, "UBND phường Cát Linh", "chức vụ")
    summary = await press(user, "Công chức", "kiểm tra lại")
    assert "Tên Đã Sửa" in summary.text and "Tên Gõ Nhầm" not in summary.text
    # A date typed at the summary corrects the birth date too.
    fixed = await say(user, "03/03/1983", "Đã sửa ngày sinh")
    assert "03/03/1983" in fixed.text
    summary = await user.wait_for(has("kiểm tra lại"))
    assert "03/03/1983" in summary.text


async def test_the_vao_thi_button_after_registering_starts_the_exam(
    bot: BotRunner, fake_api: FakeBotApi
):
    user = fake_api.user(1023)
    done = await register_civil_servant(user, phone="0900000023")
    assert "📝 Vào thi" in [label for row in done.buttons for label in row]
    intro = await press(user, "📝 Vào thi", "Bắt đầu làm bài")
    await user.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    await user.wait_for(has("Câu 1/20"))


async def test_the_poster_deep_link_leads_a_newcomer_to_registration_then_the_exam(
    bot: BotRunner, fake_api: FakeBotApi
):
    newcomer = fake_api.user(1024)
    await say(newcomer, "/start thi", "Tôi đồng ý")  # not registered yet: registration
    registered = fake_api.user(1025)
    await register_civil_servant(registered, phone="0900000025")
    await say(registered, "/start thi", "Bắt đầu làm bài")


# ------------------------------------------------------------------ the poster's QR code


def png_pixels(data: bytes) -> list[list[int]]:
    """A greyscale PNG (any bit depth up to 8, as segno writes) as rows of 0/1 (1: dark);
    every chunk's CRC is checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert colour == 0 and depth in (1, 2, 4, 8) and interlace == 0
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = (width * depth + 7) // 8
    rows: list[list[int]] = []
    previous = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        kind, row = line[0], bytearray(line[1:])
        for i in range(stride):
            left = row[i - 1] if i else 0
            up, corner = previous[i], previous[i - 1] if i else 0
            if kind == 1:
                row[i] = (row[i] + left) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + up) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                near = min((abs(p - left), 0), (abs(p - up), 1), (abs(p - corner), 2))[1]
                row[i] = (row[i] + (left, up, corner)[near]) & 0xFF
        previous = row
        top = (1 << depth) - 1
        values = [
            (row[(x * depth) // 8] >> (8 - depth - (x * depth) % 8)) & top for x in range(width)
        ]
        rows.append([1 if v < (top + 1) // 2 else 0 for v in values])
    return rows


def qr_modules(data: bytes) -> list[list[int]]:
    """The modules of a QR code's PNG: the module size is read from the finder pattern's
    first dark run, past a quiet zone of 4 modules."""
    pixels = png_pixels(data)
    size = len(pixels)
    assert all(len(row) == size for row in pixels), "a QR code is square"
    assert not any(pixels[0]) and not any(row[0] for row in pixels), "a light quiet zone"
    diagonal = [pixels[i][i] for i in range(size)]
    start = diagonal.index(1)
    scale = start // 4
    assert scale >= 1 and start == 4 * scale
    count = size // scale - 8
    return [
        [
            pixels[start + r * scale + scale // 2][start + c * scale + scale // 2]
            for c in range(count)
        ]
        for r in range(count)
    ]


def segno_modules(link: str) -> list[list[int]]:
    code = segno.make(link, error="m", micro=False)
    return [list(row) for row in code.matrix]


async def test_the_qr_subcommand_draws_the_deep_link_of_the_bot(
    fake_api: FakeBotApi, tmp_path: Path
) -> None:
    cli = Cli(tmp_path)
    api = {"CONTEST_BOT_TOKEN": fake_api.token, "CONTEST_BOT_API_URL": fake_api.base_url}
    dead = {
        "CONTEST_BOT_TOKEN": fake_api.token,
        "CONTEST_BOT_API_URL": cli.env["CONTEST_BOT_API_URL"],
    }
    poster = tmp_path / "poster.png"
    asked, given, refused, no_token, unreachable = await asyncio.to_thread(
        cli.many,
        (["qr", "--output", str(poster)], api),
        # A username given: no Bot API needed (nothing listens at the configured URL),
        # another payload, the default file name in the working folder.
        (["qr", "--username", "@DongDa_CCHC_bot", "--payload", "dangky"], dead),
        (["qr", "--payload", "thi ngay", "--username", "dongda_bot", "--output", "x.png"], {}),
        (["qr", "--output", "y.png"], {}),
        (["qr", "--output", "z.png"], dead),
    )
    assert asked.returncode == 0, asked.stderr
    link = "https://t.me/cchc_test_bot?start=thi"  # the fake server's bot, from getMe
    assert link in asked.stdout and str(poster) in asked.stdout
    assert fake_api.calls_of("getMe")
    modules = qr_modules(poster.read_bytes())
    assert modules == segno_modules(link)
    assert modules != segno_modules("https://t.me/cchc_test_bot?start=dangky")

    assert given.returncode == 0, given.stderr
    link = "https://t.me/DongDa_CCHC_bot?start=dangky"
    assert link in given.stdout
    assert qr_modules((tmp_path / "qr-dangky.png").read_bytes()) == segno_modules(link)

    # Mistakes are explained in Vietnamese, without a traceback, and write nothing.
    assert refused.returncode == 2 and "chữ cái không dấu" in refused.stderr
    assert no_token.returncode == 2 and "CONTEST_BOT_TOKEN" in no_token.stderr
    assert unreachable.returncode == 1 and "--username" in unreachable.stderr
    for result in (refused, no_token, unreachable):
        assert "Traceback" not in result.stderr, result.stderr
    assert not any((tmp_path / name).exists() for name in ("x.png", "y.png", "z.png"))
