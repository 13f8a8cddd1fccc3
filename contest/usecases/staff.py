"""Who may do what: organisers (from the settings, or promoted in the chat), a unit's focal
person, contestants; and the audit log of every organiser action and refused attempt."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from contest.errors import ContestError
from contest.model import Account, AuditEntry, Channel, Role, StaffRole, Unit
from contest.ports import UnitOfWork
from contest.registration import normalize_phone
from contest.usecases.base import UseCase

AUDIT_PAGE_SIZE = 10
_ACCOUNT_RE = re.compile(r"^(telegram|zalo):([A-Za-z0-9_-]{1,64})$")


@dataclass(frozen=True)
class Actor:
    """The account behind a console request, with its role."""

    account: Account
    role: Role
    unit_id: int | None = None  # a focal person's unit
    name: str | None = None  # the platform's display name (for the audit log)

    @property
    def key(self) -> str:
        return str(self.account)


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    page: int
    pages: int
    total: int


@dataclass(frozen=True)
class Granted:
    """A role given or taken: to which accounts, and whom they belong to."""

    accounts: list[Account]
    role: Role
    unit: Unit | None = None
    person_name: str | None = None


class Staff(UseCase):
    async def actor(self, account: Account, name: str | None = None) -> Actor:
        """The role of an account: an organiser of the settings, else its role granted in
        the chat, else a contestant."""
        if account in self.ctx.admins:
            return Actor(account, Role.ORGANISER, None, name)
        async with self.uow(write=False) as uow:
            granted = await uow.staff.role_of(account)
        if granted is None:
            return Actor(account, Role.CONTESTANT, None, name)
        return Actor(account, granted.role, granted.unit_id, name)

    async def record(
        self,
        actor: Actor,
        action: str,
        outcome: str,
        *,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Write one audit entry in a transaction of its own (refusals, failures, reads)."""
        async with self.uow() as uow:
            await audit(uow, self.clock.now(), actor, action, outcome, target, detail)
            await uow.commit()

    async def audit_page(self, page: int, size: int = AUDIT_PAGE_SIZE) -> AuditPage:
        async with self.uow(write=False) as uow:
            total = await uow.audit.count()
            pages = max(1, -(-total // size))
            page = min(max(page, 0), pages - 1)
            return AuditPage(await uow.audit.page(page * size, size), page, pages, total)

    async def promote(self, actor: Actor, target: str) -> Granted:
        """Make the target an organiser (``target``: a registered contestant's phone, or
        an account written ``telegram:<id>`` / ``zalo:<id>``, or a bare Telegram id)."""
        async with self.uow() as uow:
            accounts, person_id, name = await self._resolve(uow, target)
            now = self.clock.now()
            for account in accounts:
                await uow.staff.grant(
                    account,
                    Role.ORGANISER,
                    unit_id=None,
                    person_id=person_id,
                    by=actor.key,
                    now=now,
                )
            await audit(uow, now, actor, "promote", "ok", target=", ".join(map(str, accounts)))
            await uow.commit()
        return Granted(accounts, Role.ORGANISER, person_name=name)

    async def demote(self, actor: Actor, target: str) -> Granted:
        """Take a role granted in the chat away (organisers of the settings stay)."""
        async with self.uow() as uow:
            accounts, _, name = await self._resolve(uow, target)
            if any(account in self.ctx.admins for account in accounts):
                raise ContestError("admin_in_settings")
            now = self.clock.now()
            taken = [a for a in accounts if await uow.staff.revoke(a, now) is not None]
            if not taken:
                raise ContestError("no_role")
            await audit(uow, now, actor, "demote", "ok", target=", ".join(map(str, taken)))
            await uow.commit()
        return Granted(taken, Role.CONTESTANT, person_name=name)

    async def assign_focal(self, actor: Actor, unit_code: str, target: str) -> Granted:
        """Make a registered contestant (by phone) or an account the focal person of a
        unit: they then see that unit's participation, and nothing else."""
        async with self.uow() as uow:
            unit = await uow.units.by_code(unit_code.strip().upper())
            if unit is None:
                raise ContestError("unit_code_unknown", unit_code=unit_code[:40])
            accounts, person_id, name = await self._resolve(uow, target)
            if any(account in self.ctx.admins for account in accounts):
                raise ContestError("admin_in_settings")
            now = self.clock.now()
            for account in accounts:
                await uow.staff.grant(
                    account, Role.FOCAL, unit_id=unit.id, person_id=person_id, by=actor.key, now=now
                )
            await audit(
                uow,
                now,
                actor,
                "assign_focal",
                "ok",
                target=", ".join(map(str, accounts)),
                detail={"unit": unit.code},
            )
            await uow.commit()
        return Granted(accounts, Role.FOCAL, unit=unit, person_name=name)

    async def holders(self, *, revoked: bool = False) -> list[StaffRole]:
        """Every role granted in the chat (for the command menus); with ``revoked``, those
        taken away too."""
        async with self.uow(write=False) as uow:
            return await uow.staff.holders(revoked=revoked)

    async def _resolve(
        self, uow: UnitOfWork, target: str
    ) -> tuple[list[Account], int | None, str | None]:
        """The accounts a target names: all accounts of the contestant with that phone, or
        the one account written out."""
        text = target.strip()
        match = _ACCOUNT_RE.match(text)
        if match:
            account = Account(Channel(match.group(1)), match.group(2))
            person = await uow.persons.by_account(account)
            return [account], person.id if person else None, person.full_name if person else None
        if text.isdigit() and not text.startswith("0"):
            account = Account.telegram(text)
            person = await uow.persons.by_account(account)
            return [account], person.id if person else None, person.full_name if person else None
        try:
            phone = normalize_phone(text)
        except ContestError:
            raise ContestError("target_invalid", target=text[:40]) from None
        person = await uow.persons.by_phone(phone)
        if person is None:
            raise ContestError("phone_unknown", phone=text[:20])
        return await uow.accounts.of_person(person.id), person.id, person.full_name


async def audit(
    uow: UnitOfWork,
    now: Any,
    actor: Actor,
    action: str,
    outcome: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record an action in the audit log, in the caller's transaction (an action that
    changes something is recorded with it, or not at all)."""
    await uow.audit.record(
        AuditEntry(
            at=now,
            actor=actor.key,
            action=action,
            outcome=outcome,
            target=target,
            actor_name=actor.name,
            detail=detail,
        )
    )
