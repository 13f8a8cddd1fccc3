"""What every handler module shares: dependencies, safe edits, the error handler."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError
from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ContextTypes

from contest.clock import Clock
from contest.rules import ContestRules
from contest.services import ContestService
from handlers import texts

log = logging.getLogger(__name__)

DEPS_KEY = "contest_deps"


@dataclass(frozen=True)
class Deps:
    service: ContestService
    rules: ContestRules
    clock: Clock
    admin_ids: frozenset[int]


Context = ContextTypes.DEFAULT_TYPE


def deps(context: Context) -> Deps:
    value = context.bot_data[DEPS_KEY]
    assert isinstance(value, Deps)
    return value


def user_id(update: Update) -> int:
    assert update.effective_user is not None
    return update.effective_user.id


async def reply(update: Update, text: str, markup: Any = None) -> Message | None:
    """Send a new HTML message to the chat of the update."""
    chat = update.effective_chat
    if chat is None:
        return None
    return await chat.send_message(text, parse_mode="HTML", reply_markup=markup)


async def edit(
    query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    """Edit the pressed message; an identical edit is not an error, a vanished message is
    replaced by a new one. Returns the message that now shows the content."""
    message = query.message
    try:
        result = await query.edit_message_text(text, parse_mode="HTML", reply_markup=markup)
    except BadRequest as exc:
        if "not modified" in exc.message.lower():
            return message if isinstance(message, Message) else None
        if message is None:
            raise
        log.info("edit failed (%s); sending a new message instead", exc.message)
        return await message.chat.send_message(text, parse_mode="HTML", reply_markup=markup)
    return result if isinstance(result, Message) else None


async def edit_quick(
    query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """``edit`` for the answer path: the same request, without parsing Telegram's copy of
    the edited message back into objects (a third of the cost of a press).

    Bot API method names are case-insensitive; the lower-case name reaches
    ``do_api_request`` without python-telegram-bot's "use Bot.edit_message_text" warning.
    """
    message = query.message
    if message is None:
        await edit(query, text, markup)
        return
    kwargs: dict[str, object] = {
        "chat_id": message.chat.id,
        "message_id": message.message_id,
        "text": text,
        "parse_mode": "HTML",
    }
    if markup is not None:
        kwargs["reply_markup"] = markup
    try:
        await query.get_bot().do_api_request("editmessagetext", api_kwargs=kwargs)
    except BadRequest as exc:
        if "not modified" in exc.message.lower():
            return
        log.info("edit failed (%s); sending a new message instead", exc.message)
        await message.chat.send_message(text, parse_mode="HTML", reply_markup=markup)


async def answer_query(query: CallbackQuery, text: str | None = None, alert: bool = False) -> None:
    """Acknowledge a press; a query too old to answer is not worth failing over."""
    try:
        await query.answer(text, show_alert=alert)
    except BadRequest as exc:
        log.info("callback answer failed: %s", exc.message)


async def on_error(update: object, context: Context) -> None:
    """Log the failure (without the update's personal data) and apologise to the person."""
    error = context.error
    if isinstance(error, Forbidden):
        log.info("user blocked the bot")
        return
    if isinstance(error, DBAPIError):
        # Driver messages can quote the row (asyncpg: "Key (phone)=(…) already exists"):
        # log the kind of failure only, never its details.
        code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        log.error("update failed: %s (%s)", type(error.orig).__name__, code or "no code")
    else:
        log.error("update failed: %s", type(error).__name__, exc_info=error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            if update.callback_query is not None:
                await answer_query(update.callback_query, texts.INTERNAL_ERROR, alert=True)
            else:
                await update.effective_chat.send_message(texts.INTERNAL_ERROR)
        except TelegramError:
            log.warning("could not tell the person about the failure")
