"""Messages the bot sends on its own: deadline results and warnings.

They go through their own Bot (own connection pool) and a send throttle, so a burst of
them never delays the answers to people pressing buttons.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot
from telegram.error import BadRequest, RetryAfter

from contest.model import Account, AttemptStatus, Channel
from contest.services import AttemptSummary, Warning_
from handlers import texts
from scheduler.throttle import SendThrottle

log = logging.getLogger(__name__)

RETRIES = 3


class NotOnTelegram(Exception):
    """The person has no Telegram account to send to (they use another channel)."""


def telegram_chat(account: Account | None) -> int:
    """The private chat of a Telegram account (its user id)."""
    if account is None or account.channel is not Channel.TELEGRAM:
        raise NotOnTelegram(str(account))
    return int(account.user_id)


class TelegramNotifier:
    """Renders scheduler events in Vietnamese and sends them, paced and retried."""

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

    async def attempt_finished(self, summary: AttemptSummary) -> None:
        """The deadline closed an attempt: retire its card, then send the result."""
        chat_id = summary.chat_id or telegram_chat(summary.account)
        if summary.chat_id is not None and summary.message_id is not None:
            message_id = summary.message_id
            try:
                await self._send(
                    chat_id,
                    lambda: self._call(
                        "editmessagetext",
                        chat_id=chat_id,
                        message_id=message_id,
                        text=texts.card_closed(),
                    ),
                )
            except BadRequest as exc:
                log.info(
                    "could not retire card of attempt %s: %s",
                    summary.result.attempt_id,
                    exc.message,
                )
        await self._send(
            chat_id,
            lambda: self._call(
                "sendmessage",
                chat_id=chat_id,
                text=texts.attempt_done(
                    summary, expired=summary.result.status is AttemptStatus.EXPIRED
                ),
            ),
        )

    async def warning(self, warning: Warning_) -> None:
        chat_id = warning.chat_id or telegram_chat(warning.account)
        await self._send(
            chat_id,
            lambda: self._call(
                "sendmessage", chat_id=chat_id, text=texts.warning(warning.seconds_left)
            ),
        )
