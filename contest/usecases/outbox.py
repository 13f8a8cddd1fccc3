"""The durable outbox: notifications (results, warnings, reminders, broadcasts) are rows
written with what they announce, one per (person, purpose); the lease holder claims and
sends them. Sending is at least once; a transient failure is tried again after a back-off
for as long as the notification is meaningful; only a final answer ends it unsent."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from contest.model import Account, Channel
from contest.ports import Notification
from contest.usecases.base import Context, UseCase

RESULT_NOTIFICATION = "attempt_result"
WARNING_NOTIFICATION = "attempt_warning"
# A result is worth sending for this long; a transient failure is retried until then.
RESULT_VALID_FOR = timedelta(days=3)
# A result shown in the reply to the last press is queued too, but offered for sending only
# after this grace: the reply marks it delivered once it is shown, so a crash between the
# commit and the reply still gets the result out, and no crash sends it once.
INLINE_RESULT_GRACE = timedelta(seconds=60)
# Back-off between tries of a notification after a transient failure: 1 s doubling, capped.
RETRY_FIRST_SECONDS = 1.0
RETRY_CAP_SECONDS = 300.0


def retry_delay(tries: int) -> timedelta:
    """How long to wait before the next try, after ``tries`` failed ones (1 s, 2 s, 4 s …
    5 minutes at most)."""
    exponent = min(max(tries - 1, 0), 30)
    return timedelta(seconds=min(RETRY_FIRST_SECONDS * 2**exponent, RETRY_CAP_SECONDS))


def result_notification_key(attempt_id: int) -> str:
    """The outbox key of an attempt's result (one per attempt, whoever closed it)."""
    return f"{RESULT_NOTIFICATION}:{attempt_id}"


EXPIRY_SWEEP_SECONDS = 30.0  # how often claiming also ends what expired


class Outbox(UseCase):
    """Claiming and settling notifications (the sender lives in ``scheduler``)."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._expired_at: datetime | None = None

    async def claim(
        self, owner: str, limit: int = 50, lease_seconds: float = 60.0
    ) -> list[Notification]:
        """Take pending notifications for sending; a claim lapses after ``lease_seconds``.

        Deadline warnings come first: "1 minute left" is worth nothing late, and a wave of
        results (many attempts running out together) must not hold it back.
        """
        async with self.uow() as uow:
            now = self.clock.now()
            if self._expired_at is None or not 0 <= (now - self._expired_at).total_seconds() < (
                EXPIRY_SWEEP_SECONDS
            ):
                # What is no longer meaningful ends unsent. A scan of the pending rows: not
                # at every claim (a wave of 10,000 results is claimed 16 at a time).
                await uow.outbox.expire(now)
                self._expired_at = now
            claimed = await uow.outbox.claim(
                now, lease_seconds, limit, owner, kinds=[WARNING_NOTIFICATION]
            )
            if len(claimed) < limit:
                claimed += await uow.outbox.claim(now, lease_seconds, limit - len(claimed), owner)
            await uow.commit()
            return claimed

    async def sent(self, notification_id: int) -> None:
        async with self.uow() as uow:
            await uow.outbox.mark_sent(notification_id, self.clock.now())
            await uow.commit()

    async def ended(self, notification_id: int, outcome: str, error: str | None = None) -> None:
        """End a notification unsent: the platform refused it for good (``blocked``,
        ``refused``: the row keeps why) or there was nothing left to say (``skipped``)."""
        async with self.uow() as uow:
            await uow.outbox.end(notification_id, self.clock.now(), outcome, error)
            await uow.commit()

    async def recipient(
        self, person_id: int | None, channels: Collection[Channel]
    ) -> Account | None:
        """Where a notice to the person goes: the account they used last, among the
        channels this process sends on."""
        if person_id is None:
            return None
        async with self.uow(write=False) as uow:
            accounts = await uow.accounts.of_person(person_id)
            preferred = await uow.accounts.preferred(person_id)
        if preferred is not None and preferred.channel in channels:
            return preferred
        return next((a for a in accounts if a.channel in channels), None)

    async def unreachable(self, person_id: int | None) -> None:
        """The platform said the person cannot be reached: bulk sends skip them from now
        on, until they write to the bot again."""
        if person_id is None:
            return
        async with self.uow() as uow:
            await uow.persons.set_unreachable(person_id, self.clock.now())
            await uow.commit()

    async def retry(self, note: Notification, error: str) -> datetime:
        """A transient failure (network, 5xx, 429): the notification is offered again after
        a back-off, for as long as it is valid. Returns when."""
        when = self.clock.now() + retry_delay(note.tries)
        async with self.uow() as uow:
            await uow.outbox.retry_at(note.id, error, when)
            await uow.commit()
        return when
