"""What a person types on Zalo and how replies read there."""

from __future__ import annotations

import pytest

from contest.ui.reply import Choice, Menu
from zalo.parsing import answer_letter, command, menu_number
from zalo.render import MAX_TEXT, render, split


@pytest.mark.parametrize(
    ("typed", "choice"),
    [
        ("a", 0),
        ("B", 1),
        ("b.", 1),
        (" c ", 2),
        ("C)", 2),
        ("(a)", 0),
        ("đáp án B", 1),
        ("Đáp án: c", 2),
        ("dap an a", 0),
        ("chọn b", 1),
    ],
)
def test_answers_people_type(typed: str, choice: int):
    assert answer_letter(typed) == choice


@pytest.mark.parametrize("typed", ["d", "ab", "a b", "1", "", "abc", "bắt đầu", "/thi", "aa"])
def test_what_is_not_an_answer(typed: str):
    assert answer_letter(typed) is None


def test_numbers_and_commands():
    assert menu_number("2") == 2 and menu_number(" 10. ") == 10 and menu_number("2a") is None
    assert command("/thi") == ("thi", ())
    assert command("/DaumoI p-catlinh 0912345678") == ("daumoi", ("p-catlinh", "0912345678"))
    assert command("thi") is None


def test_markup_becomes_plain_text_with_numbered_choices():
    menu = Menu.of([Choice("✅ <b>Đồng ý</b>", "r:consent")], [Choice("Hủy", "r:cancel")])
    messages, actions = render("<b>Đăng ký</b> &amp; thi &lt;ngay&gt;", menu)
    assert messages == ["Đăng ký & thi <ngay>\n\n1. ✅ Đồng ý\n2. Hủy\nGõ số tương ứng để chọn."]
    assert actions == ["r:consent", "r:cancel"]


def test_long_texts_are_split_at_line_breaks():
    text = "\n".join(f"Dòng {i}: " + "x" * 90 for i in range(60))
    parts = split(text)
    assert len(parts) > 1 and all(len(p) <= MAX_TEXT for p in parts)
    assert "\n".join(parts) == text
    assert split("y" * 4500) == ["y" * 2000, "y" * 2000, "y" * 500]
