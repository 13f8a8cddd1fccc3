"""Registration end to end: the real bot, over HTTP, against the fake Bot API server."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from fakes.telegram import FakeBotApi
from storage import models as m
from tests.conftest import (
    BotRunner,
    has,
    press,
    register_citizen,
    register_civil_servant,
    say,
)


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
