"""Messages the bot sends on its own: deadline results and warnings."""

from __future__ import annotations

import logging

from telegram import Bot
from telegram.error import BadRequest

from contest.services import AttemptSummary, Warning_
from handlers import texts

log = logging.getLogger(__name__)


class TelegramNotifier:
    """Renders scheduler events in Vietnamese and sends them through the bot."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def attempt_finished(self, summary: AttemptSummary) -> None:
        """The deadline closed an attempt: retire its card, then send the result."""
        if summary.chat_id is not None and summary.message_id is not None:
            try:
                await self.bot.edit_message_text(
                    texts.card_closed(),
                    chat_id=summary.chat_id,
                    message_id=summary.message_id,
                    parse_mode="HTML",
                )
            except BadRequest as exc:
                log.info(
                    "could not retire card of attempt %s: %s",
                    summary.result.attempt_id,
                    exc.message,
                )
        await self.bot.send_message(
            summary.chat_id or summary.telegram_id,
            texts.attempt_done(summary, expired=True),
            parse_mode="HTML",
        )

    async def warning(self, warning: Warning_) -> None:
        await self.bot.send_message(
            warning.chat_id or warning.telegram_id,
            texts.warning(warning.seconds_left),
            parse_mode="HTML",
        )
