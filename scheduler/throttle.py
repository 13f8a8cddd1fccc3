"""Pacing of bulk sends: about 30 messages/s overall and 1 message/s per chat.

Only messages the bot sends on its own (results closed by a deadline, warnings, reminders,
broadcasts) go through here, on their own connection pool: answers to a person who just
pressed a button never queue behind them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class SendThrottle:
    """Reserves a send slot per call: global spacing ``1/rate``, per-chat ``chat_interval``."""

    def __init__(
        self,
        rate: float = 30.0,
        chat_interval: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or chat_interval < 0:
            raise ValueError("rate must be positive and chat_interval not negative")
        self.spacing = 1.0 / rate
        self.chat_interval = chat_interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_global = 0.0
        self._next_chat: dict[int, float] = {}
        self._pauses = 0

    def reserve(self, chat_id: int) -> float:
        """Book the earliest slot allowed for this chat; returns the seconds to wait."""
        now = self._monotonic()
        slot = max(now, self._next_global, self._next_chat.get(chat_id, 0.0))
        self._next_global = slot + self.spacing
        self._next_chat[chat_id] = slot + self.chat_interval
        if len(self._next_chat) > 10_000:
            self._next_chat = {c: t for c, t in self._next_chat.items() if t > now}
        return slot - now

    async def wait(self, chat_id: int) -> None:
        """Wait for this chat's slot. If Telegram asked to slow down meanwhile, the slot
        booked before is void: book again, after the pause."""
        while True:
            pauses = self._pauses
            delay = self.reserve(chat_id)
            if delay > 0:
                await self._sleep(delay)
            if self._pauses == pauses:
                return

    def pause(self, seconds: float) -> None:
        """Telegram said "retry after": nobody sends before then."""
        self._pauses += 1
        self._next_global = max(self._next_global, self._monotonic() + seconds)
