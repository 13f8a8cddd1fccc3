"""The campaign on a schedule: reminders fanned out when due (once, across restarts and
processes), and each person's switch to turn them off (/nhacnho)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from contest.campaign import CampaignEvent, late_policy, schedule
from contest.errors import ContestError
from contest.model import Account
from contest.usecases.base import UseCase

log = logging.getLogger(__name__)

REMINDER_NOTIFICATION = "reminder"


@dataclass(frozen=True)
class Standing:
    """What a reminder needs to know about its person at sending time."""

    reminders_on: bool
    locked: bool
    attempts_used: int  # round 1, finished or not
    in_progress: bool


@dataclass(frozen=True)
class FannedOut:
    event: CampaignEvent
    recipients: int | None  # None: dropped, found too late to be meaningful


class Campaign(UseCase):
    def events(self) -> list[CampaignEvent]:
        return schedule(self.rules, round2_scheduled=self.rules.round2.scheduled)

    async def run_due(self) -> list[FannedOut]:
        """Fan out every reminder that is due and was not handled yet. Each event is
        decided once (a compare-and-set on its state row, in the transaction that writes
        its outbox rows), whatever the restarts and processes."""
        now = self.clock.now()
        done: list[FannedOut] = []
        for event in self.events():
            if event.at > now:
                break
            async with self.uow(write=False) as uow:
                if await uow.campaign.handled(event.key):
                    continue
            async with self.uow() as uow:
                late_ok = late_policy(event, now)
                if not await uow.campaign.mark(event.key, now, "sent" if late_ok else "dropped"):
                    continue  # another process took it meanwhile
                count = (
                    await uow.campaign.fan_out(
                        event,
                        REMINDER_NOTIFICATION,
                        now,
                        attempts_allowed=self.rules.round1.attempts,
                    )
                    if late_ok
                    else None
                )
                await uow.commit()
            if count is None:
                log.info("reminder %s found too late: dropped", event.key)
            else:
                log.info("reminder %s queued for %d people", event.key, count)
            done.append(FannedOut(event, count))
        return done

    async def standing(self, person_id: int) -> Standing | None:
        async with self.uow(write=False) as uow:
            person = await uow.persons.get(person_id)
            if person is None:
                return None
            used = await uow.attempts.count_for(person_id, 1)
            current = await uow.attempts.in_progress(person_id, 1)
        return Standing(not person.reminders_off, person.locked, used, current is not None)

    async def set_reminders(self, account: Account, on: bool | None = None) -> bool:
        """Turn the person's campaign reminders on or off (``None``: the other way);
        returns whether they are on now."""
        async with self.uow() as uow:
            person = await uow.persons.by_account(account)
            if person is None:
                raise ContestError("not_registered")
            wanted = person.reminders_off if on is None else on
            await uow.persons.set_reminders(person.id, wanted)
            await uow.commit()
        return wanted
