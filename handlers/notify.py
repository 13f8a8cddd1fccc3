"""Notices the bot sends on its own (results, warnings, broadcasts, reminders), on Telegram.

They go through their own Bot (own connection pool) and a send throttle, so a burst of
them never delays the answers to people pressing buttons. The notices themselves are
channel-neutral (``contest.ui.notices``); this renders one for Telegram.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter

from contest.model import Account, Channel
from contest.ui.notices import Notice, Refused, Unreachable
from handlers.keyboards import menu_markup
from scheduler.throttle import SendThrottle

log = logging.getLogger(__name__)

RETRIES = 3


class TelegramNotifier:
    """Sends notices to Telegram accounts, paced and retried through 429s."""

    channel = Channel.TELEGRAM

    def __init__(self, bot: Bot, throttle: SendThrottle) -> None:
        self.bot = bot
        self.throttle = throttle

    async def _call(self, method: str, **kwargs: object) -> Any:
        """An HTML message call whose reply (Telegram's copy of the message) is not parsed
        back into objects: nothing here reads it, and a wave of results is thousands of
        them. Lower-case method names pass python-telegram-bot's check without a warning."""
        return await self.bot.do_api_request(method, api_kwargs={**kwargs, "parse_mode": "HTML"})

    async def _send(self, chat_id: int, call: Callable[[], Awaitable[Any]]) -> Any:
        for attempt in range(RETRIES):
            await self.throttle.wait(chat_id)
            try:
                return await call()
            except RetryAfter as exc:
                delay = exc.retry_after
                seconds = delay if isinstance(delay, int | float) else delay.total_seconds()
                log.warning("Telegram asked to slow down for %.1f s", seconds)
                self.throttle.pause(seconds)
                if attempt == RETRIES - 1:
                    raise
        return None

    async def deliver(self, account: Account, notice: Notice) -> None:
        """Send ``notice`` to the account's private chat (first retiring the exam card it
        replaces, if any). Raises Unreachable or Refused on a final answer of Telegram."""
        chat_id = int(account.user_id)
        try:
            if notice.retire is not None:
                card = notice.retire
                try:
                    await self._send(
                        card.chat_id,
                        lambda: self._call(
                            "editmessagetext",
                            chat_id=card.chat_id,
                            message_id=card.message_id,
                            text=card.text,
                        ),
                    )
                except BadRequest as exc:  # already edited, or deleted: the notice goes on
                    log.info("could not retire a card: %s", exc.message)
            fields: dict[str, object] = {"chat_id": chat_id, "text": notice.text}
            if notice.menu:
                fields["reply_markup"] = menu_markup(notice.menu)
            await self._send(chat_id, lambda: self._call("sendmessage", **fields))
        except Forbidden as exc:
            raise Unreachable(exc.message) from exc
        except BadRequest as exc:
            if "chat not found" in exc.message.lower():
                raise Unreachable(exc.message) from exc
            raise Refused(exc.message) from exc
        except ChatMigrated as exc:
            raise Refused(str(exc)) from exc
