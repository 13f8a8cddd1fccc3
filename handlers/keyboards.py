"""Inline and reply keyboards."""

from __future__ import annotations

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from contest.model import Group, Position, UnitKind
from contest.ports import UnitPage
from contest.registration import Draft
from contest.text import fold
from contest.ui import texts
from contest.ui.reply import Menu
from handlers.callbacks import answer_data, encode

Button = InlineKeyboardButton


def start(registered: bool) -> InlineKeyboardMarkup:
    main = (
        Button(texts.BTN_EXAM, callback_data="i:exam")
        if registered
        else Button(texts.BTN_REGISTER, callback_data="i:reg")
    )
    return InlineKeyboardMarkup(
        [
            [
                Button(texts.BTN_RULES, callback_data="i:rules"),
                Button(texts.BTN_GUIDE, callback_data="i:guide"),
            ],
            [main],
        ]
    )


def register_only() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[Button(texts.BTN_REGISTER, callback_data="i:reg")]])


def consent() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[Button(texts.BTN_CONSENT, callback_data="r:consent")]])


def share_phone() -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        [[KeyboardButton(texts.BTN_SHARE_PHONE, request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
        input_field_placeholder="Bấm nút bên dưới để chia sẻ số điện thoại",
    )


def remove() -> ReplyKeyboardRemove:
    return ReplyKeyboardRemove()


def _fix_rows() -> list[list[InlineKeyboardButton]]:
    """Corrections of the answers typed before the group step (name, birth date, phone)."""
    return [
        [
            Button(texts.EDIT_LABELS["birth_date"], callback_data="r:edit:birth_date"),
            Button(texts.EDIT_LABELS["name"], callback_data="r:edit:name"),
        ],
        [Button(texts.EDIT_LABELS["phone"], callback_data="r:edit:phone")],
    ]


def group() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [Button(texts.BTN_CIVIL_SERVANT, callback_data=f"r:group:{Group.CIVIL_SERVANT}")],
            [Button(texts.BTN_CITIZEN, callback_data=f"r:group:{Group.CITIZEN}")],
            *_fix_rows(),
        ]
    )


def under_age() -> InlineKeyboardMarkup:
    """Under the refusal of an under-age citizen: the fixes, and the other group."""
    rows = _fix_rows()
    rows.insert(
        1, [Button(texts.BTN_CIVIL_SERVANT, callback_data=f"r:group:{Group.CIVIL_SERVANT}")]
    )
    return InlineKeyboardMarkup(rows)


def registered() -> InlineKeyboardMarkup:
    """Under the registration's success: straight into the exam."""
    return InlineKeyboardMarkup([[Button(texts.BTN_EXAM, callback_data="i:exam")]])


def unit_kind() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [Button(texts.KIND_NAMES[kind], callback_data=f"r:kind:{kind.value}")]
            for kind in (UnitKind.DEPARTMENT, UnitKind.WARD, UnitKind.EDUCATION)
        ]
    )


def position() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [Button(texts.BTN_LEADER, callback_data=f"r:pos:{Position.LEADER}")],
            [Button(texts.BTN_STAFF, callback_data=f"r:pos:{Position.STAFF}")],
        ]
    )


def _short(name: str, limit: int = 60) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def units(page: UnitPage, *, ward: bool) -> InlineKeyboardMarkup:
    """A page of units to pick from: the residence ward of a citizen, or a staff unit."""
    action = "ward" if ward else "unit"
    rows = [
        [
            Button(
                _short(texts.ward_name(u) if ward else u.name),
                callback_data=encode("r", action, u.id),
            )
        ]
        for u in page.units
    ]
    query = fold(page.query or "")[:30]
    nav = []
    if page.page > 0:
        nav.append(
            Button(texts.BTN_PREV, callback_data=encode("r", "page", f"{page.page - 1}|{query}"))
        )
    if page.page + 1 < page.pages:
        nav.append(
            Button(texts.BTN_NEXT, callback_data=encode("r", "page", f"{page.page + 1}|{query}"))
        )
    if nav:
        rows.append(nav)
    if page.query:
        rows.append([Button("📋 Xem toàn bộ danh sách", callback_data="r:page:0|")])
    if not ward:
        rows.append([Button("↩️ Chọn khối khác", callback_data="r:back")])
    return InlineKeyboardMarkup(rows)


def summary(draft: Draft) -> InlineKeyboardMarkup:
    fields = ["name", "birth_date", "phone", "group"]
    fields += ["unit", "position"] if draft.group is Group.CIVIL_SERVANT else ["ward"]
    edit = [Button(texts.EDIT_LABELS[f], callback_data=f"r:edit:{f}") for f in fields]
    rows = [[Button(texts.BTN_CONFIRM, callback_data="r:confirm")]]
    rows += [edit[i : i + 2] for i in range(0, len(edit), 2)]
    return InlineKeyboardMarkup(rows)


def exam_start() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[Button(texts.BTN_START_EXAM, callback_data="x:start")]])


def answers(attempt_id: int, position: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                Button(label, callback_data=answer_data(attempt_id, position, i))
                for i, label in enumerate(texts.LABELS)
            ]
        ]
    )


def menu_markup(menu: Menu) -> InlineKeyboardMarkup:
    """A channel-neutral menu as inline buttons (each choice's action is its data)."""
    return InlineKeyboardMarkup(
        [[Button(choice.label, callback_data=choice.action) for choice in row] for row in menu.rows]
    )
