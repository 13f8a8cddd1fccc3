"""Locking a contestant (a duplicate account, say): a locked person cannot start an attempt
and is left out of rankings (``best_results``, hence the leaderboard and round 2) and of
the participation figures; the reason is kept and shown to them. An attempt already open
when the lock comes may be finished, and does not count while the lock lasts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contest.errors import ContestError
from contest.model import Person
from contest.ports import UnitOfWork
from contest.registration import normalize_phone
from contest.usecases.base import UseCase
from contest.usecases.staff import Actor, audit

# The reason is shown to the contestant, also in a popup of at most 200 characters.
MAX_LOCK_REASON = 90


@dataclass(frozen=True)
class LockView:
    person: Person  # as it was before the change
    reason: str | None  # the lock's reason (the new one; or the one just lifted)
    in_progress: bool  # an attempt of round 1 or 2 is open now
    at: datetime


class Locks(UseCase):
    async def lock(self, actor: Actor, phone: str, reason: str) -> LockView:
        """Lock the contestant registered with ``phone``; audited in the same transaction.
        Locking a locked person changes nothing (``already_locked``)."""
        reason = " ".join(reason.split()).rstrip(".")  # texts end the sentence themselves
        if not reason:
            raise ContestError("lock_reason_missing")
        if len(reason) > MAX_LOCK_REASON:
            raise ContestError("lock_reason_too_long", limit=MAX_LOCK_REASON, length=len(reason))
        async with self.uow() as uow:
            person = await self._person(uow, phone)
            if person.locked_at is not None:
                raise ContestError(
                    "already_locked",
                    name=person.full_name,
                    phone=person.phone,
                    since=person.locked_at,
                    reason=person.lock_reason or "",
                )
            now = self.clock.now()
            if not await uow.locks.lock(person.id, now, reason):
                raise ContestError("busy")  # locked by someone else this very moment
            open_now = await self._in_progress(uow, person.id)
            await audit(
                uow,
                now,
                actor,
                "lock",
                "ok",
                target=person.phone,
                detail={"person_id": person.id, "reason": reason, "in_progress": open_now},
            )
            await uow.commit()
        return LockView(person, reason, open_now, now)

    async def unlock(self, actor: Actor, phone: str) -> LockView:
        """Lift the lock; unlocking a person who is not locked changes nothing
        (``not_locked``)."""
        async with self.uow() as uow:
            person = await self._person(uow, phone)
            if person.locked_at is None:
                raise ContestError("not_locked", name=person.full_name, phone=person.phone)
            now = self.clock.now()
            if not await uow.locks.unlock(person.id):
                raise ContestError("busy")
            open_now = await self._in_progress(uow, person.id)
            await audit(
                uow,
                now,
                actor,
                "unlock",
                "ok",
                target=person.phone,
                detail={"person_id": person.id, "reason": person.lock_reason},
            )
            await uow.commit()
        return LockView(person, person.lock_reason, open_now, now)

    @staticmethod
    async def _person(uow: UnitOfWork, phone: str) -> Person:
        text = phone.strip()
        try:
            normalized = normalize_phone(text)
        except ContestError:
            raise ContestError("lock_phone_invalid", phone=text[:20]) from None
        person = await uow.persons.by_phone(normalized)
        if person is None:
            raise ContestError("phone_unknown", phone=text[:20])
        return person

    @staticmethod
    async def _in_progress(uow: UnitOfWork, person_id: int) -> bool:
        for round_number in (1, 2):
            if await uow.attempts.in_progress(person_id, round_number) is not None:
                return True
        return False
