"""The durable outbox: notifications (results, warnings, reminders, broadcasts) are rows
written with what they announce, one per (person, purpose); the lease holder claims and
sends them. Sending is at least once; a transient failure is tried again after a back-off
for as long as the notification is meaningful; only a final answer ends it unsent."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import replace
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
# Claimed before everything else, in this order: "1 minute left" is worth nothing late, and
# a result must not wait behind a broadcast to 10,000.
PRIORITY_NOTIFICATIONS = (WARNING_NOTIFICATION, RESULT_NOTIFICATION)
# Kinds fanned out to thousands at once (broadcasts, the campaign's reminders): claimed in id
# order through a cursor, after every other kind.
BULK_NOTIFICATIONS = ("broadcast", "reminder", "round1_final")
# Finding the other kinds among thousands of pending bulk rows reads every pending row: it
# runs at most this share of the time (and at least this many seconds apart).
PRIORITY_SCAN_SHARE = 0.05
PRIORITY_SCAN_SECONDS = 0.2
LAPSED_CHECK_SECONDS = 2.0
# How often each process reads again who is marked unreachable (the lease holder marks them;
# a person who writes to the bot again is cleared by whichever process hears them).
REACHABILITY_REFRESH_SECONDS = 15.0


class Outbox(UseCase):
    """Claiming and settling notifications (the sender lives in ``scheduler``)."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._expired_at: datetime | None = None
        self._scan_after = 0.0  # time.monotonic() of the next priority scan
        self._lapsed_after = 0.0  # time.monotonic() of the next look for lapsed claims
        self._long_queue = False  # the last claim left claimable rows behind
        self._cursor: int | None = None  # the id order's position through the pending rows
        self._unreachable: set[Account] = set()  # accounts of persons marked unreachable

    async def claim(
        self,
        owner: str,
        limit: int = 50,
        lease_seconds: float = 60.0,
        *,
        channels: Collection[Channel] | None = None,
    ) -> list[Notification]:
        """Take pending notifications for sending; a claim lapses after ``lease_seconds``.
        Each comes with its recipient's preferred account.

        The rows are chosen in a read, then taken in one short write (a compare-and-set),
        so a long queue is never scanned while the write lock is held. They come in id
        order, through a cursor (one index range, however long the queue). While the queue
        is longer than a claim (a broadcast, a wave of results), warnings, then results,
        then every kind but bulk ones are looked for first, so nothing waits behind a
        broadcast to 10,000; and every LAPSED_CHECK_SECONDS, the rows whose claim ran out
        (a crash, a send that outlived its claim). ``channels``: only notifications for
        persons with an account on one of them (and those naming no person), for a process
        that sends on those channels only.
        """
        now = self.clock.now()
        if self._expired_at is None or not 0 <= (now - self._expired_at).total_seconds() < (
            EXPIRY_SWEEP_SECONDS
        ):
            # What is no longer meaningful ends unsent. A scan of the pending rows: not
            # at every claim.
            async with self.uow() as uow:
                await uow.outbox.expire(now)
                await uow.commit()
            self._expired_at = now
        found: list[Notification] = []
        async with self.uow(write=False) as uow:
            began = time.monotonic()
            if began >= self._lapsed_after:
                found += await uow.outbox.candidates(now, limit, lapsed=True, channels=channels)
                self._lapsed_after = began + LAPSED_CHECK_SECONDS
            if self._long_queue and began >= self._scan_after and len(found) < limit:
                found += await uow.outbox.candidates(
                    now,
                    limit - len(found),
                    exclude=BULK_NOTIFICATIONS,
                    first=PRIORITY_NOTIFICATIONS,
                    channels=channels,
                )
                took = time.monotonic() - began
                self._scan_after = began + max(PRIORITY_SCAN_SECONDS, took / PRIORITY_SCAN_SHARE)
            wanted = limit - len(found)
            if wanted > 0:
                ordered = await uow.outbox.candidates(
                    now, wanted, after=self._cursor, channels=channels
                )
                # A full batch: go on from its last row next time; else start over (rows
                # behind the cursor may be offered again: a back-off ended).
                self._long_queue = len(ordered) == wanted
                self._cursor = ordered[-1].id if self._long_queue else None
                found += ordered
            found = list({note.id: note for note in found}.values())
            persons = [note.person_id for note in found if note.person_id is not None]
            recipients = await uow.outbox.recipients(persons) if persons else {}
        if not found:
            return []
        async with self.uow() as uow:
            taken = await uow.outbox.take([note.id for note in found], now, lease_seconds, owner)
            await uow.commit()
        return [
            replace(
                note,
                tries=taken[note.id],
                recipient=recipients.get(note.person_id) if note.person_id is not None else None,
            )
            for note in found
            if note.id in taken
        ]

    async def release(self, notes: Collection[Notification]) -> None:
        """Give back claimed notifications that were never tried (shutting down)."""
        if not notes:
            return
        async with self.uow() as uow:
            await uow.outbox.release([note.id for note in notes])
            await uow.commit()

    async def sent(self, notification_id: int) -> None:
        async with self.uow() as uow:
            await uow.outbox.mark_sent(notification_id, self.clock.now())
            await uow.commit()

    async def sent_many(self, notification_ids: Collection[int]) -> None:
        """Mark many notifications delivered, in one transaction."""
        if not notification_ids:
            return
        async with self.uow() as uow:
            await uow.outbox.mark_sent_many(list(notification_ids), self.clock.now())
            await uow.commit()

    async def ended(self, notification_id: int, outcome: str, error: str | None = None) -> None:
        """End a notification unsent: the platform refused it for good (``blocked``,
        ``refused``: the row keeps why) or there was nothing left to say (``skipped``)."""
        async with self.uow() as uow:
            await uow.outbox.end(notification_id, self.clock.now(), outcome, error)
            await uow.commit()

    async def recipient(self, note: Notification, channels: Collection[Channel]) -> Account | None:
        """Where a notice goes: the account the person used last (read with the claim),
        among the channels this process sends on; or the account the notification names
        (``payload["to"]``, e.g. an organiser's report)."""
        if note.recipient is not None and note.recipient.channel in channels:
            return note.recipient
        named = note.payload.get("to")
        if isinstance(named, str) and ":" in named:
            channel, user_id = named.split(":", 1)
            if channel in {c.value for c in channels}:
                return Account(Channel(channel), user_id)
        if note.person_id is None:
            return None
        async with self.uow(write=False) as uow:
            accounts = await uow.accounts.of_person(note.person_id)
            preferred = await uow.accounts.preferred(note.person_id)
        if preferred is not None and preferred.channel in channels:
            return preferred
        return next((a for a in accounts if a.channel in channels), None)

    async def reroute(
        self, note: Notification, blocked: Account, channels: Collection[Channel]
    ) -> Account | None:
        """The person blocked the bot on ``blocked`` but has another account on one of
        ``channels``: that one becomes the one used last (so this notice and the next go
        there), and the notice is offered again at once. None when there is no other
        account: the person is unreachable."""
        if note.person_id is None:
            return None
        async with self.uow() as uow:
            accounts = await uow.accounts.of_person(note.person_id)
            other = next((a for a in accounts if a != blocked and a.channel in channels), None)
            if other is None:
                return None
            now = self.clock.now()
            await uow.accounts.touch(other, now)
            await uow.outbox.retry_at(note.id, f"blocked on {blocked.channel.value}", now)
            await uow.commit()
        return other

    async def unreachable(self, person_id: int | None) -> None:
        """The platform said the person cannot be reached: bulk sends skip them from now
        on, until they write to the bot again."""
        if person_id is None:
            return
        async with self.uow() as uow:
            await uow.persons.set_unreachable(person_id, self.clock.now())
            accounts = await uow.accounts.of_person(person_id)
            await uow.commit()
        self._unreachable.update(accounts)

    async def load_unreachable(self) -> None:
        """Read again which accounts belong to persons marked unreachable (every
        REACHABILITY_REFRESH_SECONDS: another process may have marked them)."""
        async with self.uow(write=False) as uow:
            self._unreachable = set(await uow.broadcasts.unreachable_accounts())

    def flagged(self, account: Account) -> bool:
        """Whether the account's person may be marked unreachable: a set lookup, for every
        update a person sends."""
        return account in self._unreachable

    async def reachable_again(self, account: Account) -> bool:
        """The person wrote to the bot or pressed a button: if they are marked unreachable,
        they are not any more (read first, written only when the mark is set). True when
        the mark was cleared."""
        if account not in self._unreachable:
            return False
        self._unreachable.discard(account)
        async with self.uow(write=False) as uow:
            person = await uow.persons.by_account(account)
        if person is None or person.unreachable_at is None:
            return False
        async with self.uow() as uow:
            await uow.persons.set_unreachable(person.id, None)
            accounts = await uow.accounts.of_person(person.id)
            await uow.commit()
        self._unreachable.difference_update(accounts)
        return True

    async def postpone(self, note: Notification, until: datetime) -> None:
        """Not now (the quiet hours): offer it again at ``until``, no failure counted."""
        async with self.uow() as uow:
            await uow.outbox.retry_at(note.id, "quiet hours", until)
            await uow.commit()

    async def retry(self, note: Notification, error: str) -> datetime:
        """A transient failure (network, 5xx, 429): the notification is offered again after
        a back-off, for as long as it is valid. Returns when."""
        when = self.clock.now() + retry_delay(note.tries)
        async with self.uow() as uow:
            await uow.outbox.retry_at(note.id, error, when)
            await uow.commit()
        return when
