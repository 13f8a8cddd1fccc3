"""Notices the bot sends on its own (results, warnings, reminders, broadcasts) to Zalo
accounts: the ``ChannelSender`` of the Zalo channel, registered with the outbox sender.

Sends are paced by their own throttle (overall rate, spacing per chat) on their own HTTP
session, so a broadcast never delays the replies to people answering questions. A notice's
numbered choices are remembered like a reply's, so typing the number works. Zalo cannot
edit a message: a card to retire is left alone, and a status message is sent anew.
"""

from __future__ import annotations

import logging
import zlib

from contest.model import Account, Channel
from contest.services import ContestService
from contest.ui.notices import Notice, Refused, Unreachable
from scheduler.throttle import SendThrottle
from zalo import render
from zalo.api import ZaloApi, ZaloError
from zalo.chat import zalo_wording

log = logging.getLogger(__name__)

RETRIES = 3
RATE_LIMITED_PAUSE = 2.0  # seconds: Zalo gives no retry_after


def chat_key(user_id: str) -> int:
    """The throttle's per-chat key for a Zalo id (ids are text)."""
    return zlib.crc32(user_id.encode("utf-8"))


class ZaloNotifier:
    channel = Channel.ZALO

    def __init__(self, api: ZaloApi, throttle: SendThrottle, service: ContestService) -> None:
        self.api = api
        self.throttle = throttle
        self.service = service

    @property
    def pace(self) -> float:
        return 1.0 / self.throttle.spacing

    async def _send(self, chat_id: str, text: str) -> None:
        key = chat_key(chat_id)
        for attempt in range(RETRIES):
            await self.throttle.wait(key)
            try:
                await self.api.send_message(chat_id, text)
                return
            except ZaloError as exc:
                if exc.unreachable:
                    raise Unreachable(exc.description) from None
                if exc.code == 429 and attempt < RETRIES - 1:
                    log.warning("Zalo asked to slow down: pausing %.1f s", RATE_LIMITED_PAUSE)
                    self.throttle.pause(RATE_LIMITED_PAUSE)
                    continue
                if exc.transient:
                    raise  # the outbox tries again after a back-off
                raise Refused(f"{exc.code} {exc.description}") from None
            # A ZaloNetworkError goes up as it is: transient, retried by the outbox.

    async def deliver(self, account: Account, notice: Notice) -> None:
        messages, actions = render.render(zalo_wording(notice.text), notice.menu)
        for message in messages:
            await self._send(account.user_id, message)
        if actions:
            await self._remember(account, actions)

    async def show(self, account: Account, notice: Notice, message_id: int | None) -> int | None:
        """No edits on Zalo: the status is sent as a new message; nothing to edit later."""
        await self.deliver(account, notice)
        return None

    async def _remember(self, account: Account, actions: list[str]) -> None:
        """The numbered choices of the notice: typing a number picks one (like a reply's)."""
        try:
            async with self.service.uow() as uow:
                state = await uow.dialogues.get(account) or {}
                state["menu"] = actions
                await uow.dialogues.put(account, state, self.service.clock.now())
                await uow.commit()
        except Exception as exc:  # sent already: the choices are a convenience
            log.info("could not remember a notice's choices: %s", type(exc).__name__)
