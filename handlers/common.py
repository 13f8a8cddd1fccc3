"""What every handler module shares: dependencies, safe edits, the error handler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.ext import ContextTypes

from contest.clock import Clock
from contest.model import Account
from contest.rules import ContestRules
from contest.services import ContestService
from contest.ui import texts

log = logging.getLogger(__name__)

DEPS_KEY = "contest_deps"
# A 429 on the answer path is waited out and tried once more when Telegram asks for at most
# this long (a person is looking at the card); a longer pause is not worth holding the chat.
SHORT_RETRY_AFTER = 3.0

T = TypeVar("T")


def retry_after_seconds(exc: RetryAfter) -> float:
    delay = exc.retry_after
    return delay.total_seconds() if isinstance(delay, timedelta) else float(delay)


async def once_more_on_429(call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call``; if Telegram answers 429 with a short ``retry_after``, wait it out and
    run it once more."""
    try:
        return await call()
    except RetryAfter as exc:
        seconds = retry_after_seconds(exc)
        if seconds > SHORT_RETRY_AFTER:
            raise
        log.info("Telegram asked to wait %.1f s; trying once more", seconds)
        await asyncio.sleep(seconds)
        return await call()


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


def user_id(update: Update) -> Account:
    """The Telegram account of the person behind an update."""
    assert update.effective_user is not None
    return Account.telegram(update.effective_user.id)


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
    bot = query.get_bot()
    try:
        await once_more_on_429(lambda: bot.do_api_request("editmessagetext", api_kwargs=kwargs))
    except BadRequest as exc:
        if "not modified" in exc.message.lower():
            return
        log.info("edit failed (%s); sending a new message instead", exc.message)
        await message.chat.send_message(text, parse_mode="HTML", reply_markup=markup)


async def answer_query(
    query: CallbackQuery,
    text: str | None = None,
    alert: bool = False,
    *,
    timeout: float | None = None,
) -> None:
    """Acknowledge a press. It never fails the handler: what the press changed is already
    committed, and the card must still be edited (a query too old to answer, a timeout or a
    server error only leave the button's spinner on); a short 429 is tried once more.
    ``timeout`` bounds each try (connecting, sending and the answer)."""
    try:
        await once_more_on_429(
            lambda: (
                query.answer(
                    text,
                    show_alert=alert,
                    read_timeout=timeout,
                    write_timeout=timeout,
                    connect_timeout=timeout,
                    pool_timeout=timeout,
                )
                if timeout is not None
                else query.answer(text, show_alert=alert)
            )
        )
    except BadRequest as exc:
        log.info("callback answer failed: %s", exc.message)
    except TelegramError as exc:
        log.info("callback answer failed: %s", type(exc).__name__)


async def on_error(update: object, context: Context) -> None:
    """Log the failure (without the update's personal data) and apologise to the person."""
    error = context.error
    if isinstance(error, Forbidden):
        log.info("user blocked the bot")
        return
    apology = texts.INTERNAL_ERROR
    if isinstance(error, DBAPIError):
        # Driver messages can quote the row (asyncpg: "Key (phone)=(…) already exists"):
        # log the kind of failure only, never its details.
        code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        code = code or getattr(error.orig, "sqlite_errorname", None)
        log.error("update failed: %s (%s)", type(error.orig).__name__, code or "no code")
        if code == "SQLITE_BUSY":  # another process held the database for the whole wait
            apology = texts.error("busy")
    else:
        log.error("update failed: %s", type(error).__name__, exc_info=error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            if update.callback_query is not None:
                await answer_query(update.callback_query, apology, alert=True)
            else:
                await update.effective_chat.send_message(apology)
        except TelegramError:
            log.warning("could not tell the person about the failure")
