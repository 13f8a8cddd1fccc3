"""/nhacnho and the «Tắt nhắc nhở» button under a reminder: a person's campaign reminders
on or off."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from contest.errors import ContestError
from contest.ui import texts
from handlers.common import Context, answer_query, deps, reply, user_id
from handlers.keyboards import menu_markup


async def toggle(update: Update, context: Context) -> None:
    """/nhacnho: turn reminders off, or on again."""
    try:
        on = await deps(context).service.campaign.set_reminders(user_id(update))
    except ContestError as exc:
        await reply(update, texts.error(exc.code, **exc.params))
        return
    answer = texts.reminders_state(on)
    await reply(update, answer.text, menu_markup(answer.menu) if answer.menu else None)


async def button(update: Update, context: Context) -> None:
    """«Tắt nhắc nhở» / «Bật nhắc nhở»."""
    query = update.callback_query
    assert query is not None and query.data is not None
    wanted = query.data == "n:on"
    try:
        on = await deps(context).service.campaign.set_reminders(user_id(update), wanted)
    except ContestError as exc:
        await answer_query(query, texts.error(exc.code, **exc.params), alert=True)
        return
    await answer_query(query)
    answer = texts.reminders_state(on)
    await reply(update, answer.text, menu_markup(answer.menu) if answer.menu else None)


def handlers() -> list[BaseHandler[Any, Any, Any]]:
    return [
        CommandHandler("nhacnho", toggle),
        CallbackQueryHandler(button, pattern=r"^n:(on|off)$"),
    ]
