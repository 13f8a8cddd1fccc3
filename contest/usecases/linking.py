"""Linking: one person, one contestant, whatever the channel.

A person registered on one channel asks for a one-time code there (6 digits, valid a few
minutes) and types it on the other channel: that account is linked to the same person, so
attempts, results and the ranking count them once. A link is always explicit and verified
this way, never made by name or phone. Wrong codes are rate-limited per account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from contest.errors import Conflict, ContestError
from contest.model import Account, Person
from contest.usecases.base import UseCase

log = logging.getLogger(__name__)

CODE_MINUTES = 10
CODE_DIGITS = 6
WRONG_TRIES = 5  # wrong codes allowed per account within WRONG_WINDOW
WRONG_WINDOW = timedelta(minutes=10)
ISSUE_TRIES = 5  # fresh codes drawn when one is taken


@dataclass(frozen=True)
class LinkCode:
    code: str
    expires_at: datetime
    minutes: int


class Linking(UseCase):
    async def issue(self, account: Account) -> LinkCode:
        """A new code for the person of ``account`` (earlier unused codes stop working)."""
        for _ in range(ISSUE_TRIES):
            code = "".join(str(self.ctx.rng.randrange(10)) for _ in range(CODE_DIGITS))
            now = self.clock.now()
            expires_at = now + timedelta(minutes=CODE_MINUTES)
            try:
                async with self.uow() as uow:
                    person = await uow.persons.by_account(account)
                    if person is None:
                        raise ContestError("not_registered")
                    await uow.links.add(code, person.id, now, expires_at)
                    await uow.commit()
            except Conflict:
                continue
            log.info("link code issued for person %s", person.id)
            return LinkCode(code, expires_at, CODE_MINUTES)
        raise ContestError("busy")

    async def redeem(self, account: Account, code: str) -> Person:
        """Link ``account`` to the person whose code this is; refused (and counted as a
        wrong try) when the code is unknown, used or expired."""
        async with self.uow() as uow:
            now = self.clock.now()
            who = str(account)
            if await uow.links.wrong_tries(who, now - WRONG_WINDOW) >= WRONG_TRIES:
                minutes = int(WRONG_WINDOW.total_seconds() // 60)
                raise ContestError("link_rate", minutes=minutes)
            own = await uow.persons.by_account(account)
            person_id = await uow.links.use(code, who, now)
            if person_id is None:
                await uow.links.record_wrong(who, now)
                await uow.commit()
                log.info("a wrong link code was typed")
                raise ContestError("link_code_wrong")
            if own is not None:
                # The code stays unused: this account cannot take it.
                code_owner = "link_same_person" if own.id == person_id else None
                raise ContestError(code_owner or "link_already_registered")
            taken = [
                a for a in await uow.accounts.of_person(person_id) if a.channel is account.channel
            ]
            if taken:
                raise ContestError("link_channel_taken")
            person = await uow.persons.get(person_id)
            assert person is not None
            await uow.accounts.link(account, person_id, now)  # used now: preferred from now
            await uow.drafts.delete(account)  # a registration begun here is not needed
            await uow.commit()
        log.info("person %s linked an account on %s", person_id, account.channel.value)
        return person
