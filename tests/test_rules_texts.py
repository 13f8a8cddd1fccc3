"""Every text that states a rule reads it from the contest file: with 30 questions, 15
minutes and 3 attempts (round 2: 25 questions, 30 minutes), /start, /thele, /huongdan, the
exam intro and the card say so, never the plan's 20/20/2; /cauhinh shows the rules in force."""

from __future__ import annotations

import re
import tomllib

import pytest

from bot.config import parse_rules
from contest.rules import ContestRules
from contest.ui import texts
from contest.ui.console.config import config_text
from fakes.telegram import FakeBotApi
from tests.conftest import ADMIN, ROOT, BotRunner, has, register_civil_servant, say

# The plan's numbers as a text would state them ("còn 2/2 lần", "20 câu", "20 phút").
PLAN_NUMBERS = re.compile(r"\b20 câu|\b20 phút|\b2 lần|\b\d+/2\b|\b\d+/20\b")


@pytest.fixture
def rules() -> ContestRules:
    """The shipped example with other numbers (overrides conftest's ``rules``)."""
    data = tomllib.loads((ROOT / "contest.example.toml").read_text(encoding="utf-8"))
    data["round1"].update(questions=30, minutes=15, attempts=3)
    data["round2"].update(questions=25, minutes=30, venue="")
    return parse_rules(data)


def test_the_texts_read_the_numbers_of_the_contest_file(rules: ContestRules):
    said = {
        "welcome": texts.welcome("An", False, rules),
        "rules": texts.rules_text(rules),
        "guide": texts.guide_text(rules),
        "intro": texts.exam_intro(rules.round1, 0, None),
    }
    for name, text in said.items():
        assert "30 câu" in text, name
        assert "15 phút" in text, name
        assert "3 lần" in text or "3/3" in text, name
        assert PLAN_NUMBERS.search(text) is None, (name, PLAN_NUMBERS.search(text))
    assert "mỗi lượt 25 câu, làm trong 30 phút" in said["rules"]
    assert "địa điểm sẽ thông báo sau" in said["rules"]
    assert "nhắc khi còn 5 phút và 1 phút" in said["guide"]


def test_cauhinh_shows_the_rules_in_force(rules: ContestRules):
    text = config_text(rules)
    assert "30 câu hỏi mỗi lần thi, làm trong 15 phút, 3 lần thi" in text
    assert "25 câu hỏi mỗi lần thi, làm trong 30 phút, 1 lần thi" in text
    assert "Địa điểm: <i>sẽ thông báo sau</i>" in text
    assert "mở 00:00 ngày 01/08/2024, đóng 00:00 ngày 16/08/2024" in text  # local time
    assert "50 thí sinh" in text and "từ 50% trở lên" in text
    assert "Giải Nhất: 1 giải × 3.000.000 đồng" in text
    assert "Giải Khuyến khích: 4 giải × 500.000 đồng" in text
    assert "Tối thiểu 1 lãnh đạo đơn vị và 30% công chức" in text
    assert "Nhắc giờ khi còn: 5 phút, 1 phút" in text


async def test_the_bot_says_the_numbers_of_the_contest_file(
    console_bot: BotRunner, fake_api: FakeBotApi
):
    user = fake_api.user(9401, first_name="Hà")
    for command, title in (("/start", "Xin chào"), ("/thele", "THỂ LỆ"), ("/huongdan", "HƯỚNG")):
        said = await say(user, command, title)
        assert "30 câu" in said.text and "15 phút" in said.text and "3 lần" in said.text
        assert PLAN_NUMBERS.search(said.text) is None, said.text
    await register_civil_servant(user, phone="0933000001")
    intro = await say(user, "/thi", "Bắt đầu")
    assert "30 câu hỏi" in intro.text and "15 phút" in intro.text and "3/3" in intro.text
    await user.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    card = await user.wait_for(has("Câu 1/30"))
    assert "Lần thi 1/3" in card.text and "Còn lại 15:00" in card.text

    shown = await say(fake_api.user(ADMIN), "/cauhinh", "CẤU HÌNH CUỘC THI")
    assert "30 câu hỏi mỗi lần thi, làm trong 15 phút, 3 lần thi" in shown.text
    assert "sẽ thông báo sau" in shown.text
    await say(user, "/cauhinh", "chỉ dành cho Ban Tổ chức")
