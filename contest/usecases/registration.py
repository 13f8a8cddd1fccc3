"""Registration: the conversation that makes a person a contestant, and the profile."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from contest.errors import ContestError
from contest.model import Account, Channel, Group, Person, Position, Unit, UnitKind
from contest.ports import UnitOfWork, UnitPage
from contest.registration import (
    EDITABLE,
    Draft,
    Step,
    clean_name,
    normalize_phone,
    parse_birth_date,
)
from contest.usecases.base import UseCase

log = logging.getLogger(__name__)

UNIT_PAGE_SIZE = 8
# Steps after the phone, before the summary: the answers already given (name, birth date,
# phone) can be corrected from there too, not only from the summary; a date typed there is
# a birth-date correction (a citizen refused as under age typed 2015 for 1985, say).
_BEFORE_SUMMARY = frozenset({Step.GROUP, Step.UNIT_KIND, Step.UNIT, Step.POSITION, Step.WARD})
_EDITABLE_BEFORE_SUMMARY = frozenset({"name", "birth_date", "phone"})


@dataclass(frozen=True)
class RegistrationView:
    draft: Draft
    page: UnitPage | None = None
    units: dict[str, Unit | None] | None = None  # "unit", "ward" names for the summary
    corrected: str | None = None  # a field just corrected by typing it ("birth_date")


@dataclass(frozen=True)
class Profile:
    person: Person
    unit: Unit | None
    ward: Unit | None


class Registration(UseCase):
    """Registration, once per person: consent, name, birth date, phone, group, unit and
    position or ward, then a summary to confirm. The draft is stored after every step."""

    async def profile(self, account: Account) -> Profile | None:
        async with self.uow(write=False) as uow:
            person = await uow.persons.by_account(account)
            if person is None:
                return None
            unit = await uow.units.get(person.unit_id) if person.unit_id else None
            ward = await uow.units.get(person.ward_id) if person.ward_id else None
            return Profile(person, unit, ward)

    async def draft_view(self, account: Account) -> RegistrationView | None:
        """The person's draft, or None when there is none."""
        async with self.uow(write=False) as uow:
            draft = await uow.drafts.get(account)
            if draft is None:
                return None
            return await self._view(uow, draft)

    async def begin_registration(self, account: Account) -> RegistrationView:
        """Start (or resume) registration; refuses a person already registered."""
        async with self.uow() as uow:
            if await uow.persons.by_account(account):
                raise ContestError("already_registered")
            draft = await uow.drafts.get(account)
            if draft is None:
                draft = Draft()
                await uow.drafts.save(account, draft, self.clock.now())
                await uow.commit()
            return await self._view(uow, draft)

    async def register_input(self, account: Account, step: Step, value: Any) -> RegistrationView:
        """Apply one answer of the registration conversation.

        ``value`` depends on the step: True for consent, text for name and birth date,
        (phone, contact_user_id) for the phone, a Group, a UnitKind, a unit id,
        a Position, or a ward unit id.
        """
        async with self.uow() as uow:
            if await uow.persons.by_account(account):
                raise ContestError("already_registered")
            draft = await uow.drafts.get(account)
            if draft is None:
                raise ContestError("no_registration")
            if draft.step is not step:
                raise ContestError("wrong_step", expected=draft.step.value)
            await self._apply(uow, account, draft, step, value)
            await uow.drafts.save(account, draft, self.clock.now())
            await uow.commit()
            return await self._view(uow, draft)

    async def _apply(
        self, uow: UnitOfWork, account: Account, draft: Draft, step: Step, value: Any
    ) -> None:
        if step is Step.CONSENT:
            if value is not True:
                raise ContestError("consent_required")
            draft.consent = True
            draft.advance(Step.NAME)
        elif step is Step.NAME:
            draft.full_name = clean_name(str(value))
            draft.advance(Step.BIRTH_DATE)
        elif step is Step.BIRTH_DATE:
            draft.birth_date = parse_birth_date(str(value), self.ctx.today())
            if draft.group is Group.CITIZEN:
                draft.check_age(self.ctx.today(), self.rules.min_age)
            draft.advance(Step.PHONE)
        elif step is Step.PHONE:
            phone_raw, contact_user_id = value
            if account.channel is Channel.TELEGRAM and str(contact_user_id) != account.user_id:
                raise ContestError("contact_not_own")
            phone = normalize_phone(str(phone_raw))
            owner = await uow.persons.by_phone(phone)
            if owner is not None:  # this account has no person yet: the phone is another's
                raise ContestError("phone_taken")
            draft.phone = phone
            draft.advance(Step.GROUP)
        elif step is Step.GROUP:
            group = Group(value)
            if group is Group.CITIZEN:
                draft.group = group
                try:
                    draft.check_age(self.ctx.today(), self.rules.min_age)
                except ContestError:
                    draft.group = None
                    raise
                draft.unit_kind = draft.unit_id = draft.position = None
                draft.advance(Step.WARD)
            else:
                draft.group = group
                draft.ward_id = None
                draft.advance(Step.UNIT_KIND)
        elif step is Step.UNIT_KIND:
            draft.unit_kind = UnitKind(value)
            draft.unit_id = None
            draft.step = Step.UNIT  # always pick the unit right after its kind
        elif step is Step.UNIT:
            unit = await uow.units.get(int(value))
            if unit is None or unit.kind is not draft.unit_kind:
                raise ContestError("unit_unknown")
            draft.unit_id = unit.id
            draft.advance(Step.POSITION)
        elif step is Step.POSITION:
            draft.position = Position(value)
            draft.advance(Step.CONFIRM)
        elif step is Step.WARD:
            ward = await uow.units.get(int(value))
            if ward is None or ward.kind is not UnitKind.WARD:
                raise ContestError("unit_unknown")
            draft.ward_id = ward.id
            draft.advance(Step.CONFIRM)
        else:
            raise ContestError("wrong_step", expected=draft.step.value)

    async def registration_text(self, account: Account, text: str) -> RegistrationView:
        """Typed text during registration: the answer of a text step, a birth-date
        correction (a date typed once past that step), or a unit search.

        Raises ``use_buttons`` / ``use_phone_button`` where a button is expected, and
        ``no_registration`` when the person has no registration under way.
        """
        async with self.uow(write=False) as uow:
            draft = await uow.drafts.get(account)
        if draft is None:
            raise ContestError("no_registration")
        if draft.step in (Step.NAME, Step.BIRTH_DATE):
            return await self.register_input(account, draft.step, text)
        if draft.birth_date is not None:
            corrected = await self._correct_birth_date(account, draft.step, text)
            if corrected is not None:
                return corrected
        if draft.step in (Step.UNIT, Step.WARD):
            return await self.unit_page(account, 0, text.strip()[:60] or None)
        if draft.step is Step.PHONE:
            raise ContestError("use_phone_button")
        raise ContestError("use_buttons")

    async def _correct_birth_date(
        self, account: Account, step: Step, text: str
    ) -> RegistrationView | None:
        """A date typed after the birth-date step corrects it, at the same step; None when
        the text is no date at all. An impossible date, or a citizen's date under the age
        limit, is refused and changes nothing."""
        try:
            born = parse_birth_date(text, self.ctx.today())
        except ContestError as exc:
            if exc.code == "birth_date_format":
                return None
            raise
        async with self.uow() as uow:
            if await uow.persons.by_account(account):
                raise ContestError("already_registered")
            draft = await uow.drafts.get(account)
            if draft is None or draft.step is not step:
                raise ContestError("wrong_step", expected=draft.step.value if draft else "")
            previous = draft.birth_date
            draft.birth_date = born
            try:
                draft.check_age(self.ctx.today(), self.rules.min_age)
            except ContestError:
                draft.birth_date = previous
                raise
            await uow.drafts.save(account, draft, self.clock.now())
            await uow.commit()
            view = await self._view(uow, draft)
        return RegistrationView(view.draft, view.page, view.units, corrected="birth_date")

    async def unit_kind_again(self, account: Account) -> RegistrationView:
        """From the unit list, go back to choosing the kind of unit."""
        async with self.uow() as uow:
            draft = await uow.drafts.get(account)
            if draft is None or draft.step is not Step.UNIT:
                raise ContestError("wrong_step", expected=draft.step.value if draft else "")
            draft.step = Step.UNIT_KIND
            await uow.drafts.save(account, draft, self.clock.now())
            await uow.commit()
            return await self._view(uow, draft)

    async def unit_page(
        self, account: Account, page: int, query: str | None = None
    ) -> RegistrationView:
        """Another page of units (or wards) for the current step, optionally filtered."""
        async with self.uow(write=False) as uow:
            draft = await uow.drafts.get(account)
            if draft is None or draft.step not in (Step.UNIT, Step.WARD):
                raise ContestError("wrong_step", expected=draft.step.value if draft else "")
            return await self._view(uow, draft, page=page, query=query)

    async def edit_field(self, account: Account, field: str) -> RegistrationView:
        """From the summary, go back to one field; the summary returns after it. From the
        steps between the phone and the summary (the group, the unit, the ward), the name,
        the birth date or the phone can be corrected too; that step comes back after it."""
        if field not in EDITABLE:
            raise ContestError("wrong_step", expected="confirm")
        async with self.uow() as uow:
            draft = await uow.drafts.get(account)
            if draft is None:
                raise ContestError("wrong_step", expected="")
            early = draft.step in _BEFORE_SUMMARY and field in _EDITABLE_BEFORE_SUMMARY
            if draft.step is not Step.CONFIRM and not early:
                raise ContestError("wrong_step", expected=draft.step.value)
            target = EDITABLE[field]
            if target is Step.POSITION and draft.group is not Group.CIVIL_SERVANT:
                raise ContestError("wrong_step", expected="confirm")
            if target is Step.WARD and draft.group is not Group.CITIZEN:
                raise ContestError("wrong_step", expected="confirm")
            if target is Step.UNIT_KIND and draft.group is not Group.CIVIL_SERVANT:
                raise ContestError("wrong_step", expected="confirm")
            draft.step = target
            draft.editing = True
            await uow.drafts.save(account, draft, self.clock.now())
            await uow.commit()
            return await self._view(uow, draft)

    async def confirm_registration(self, account: Account) -> Person:
        async with self.uow() as uow:
            if await uow.persons.by_account(account):
                raise ContestError("already_registered")
            draft = await uow.drafts.get(account)
            if draft is None or draft.step is not Step.CONFIRM or draft.missing_step():
                raise ContestError("wrong_step", expected=draft.step.value if draft else "")
            draft.check_age(self.ctx.today(), self.rules.min_age)
            assert draft.phone and draft.full_name and draft.birth_date and draft.group
            if await uow.persons.by_phone(draft.phone):
                raise ContestError("phone_taken")
            now = self.clock.now()
            person = await uow.persons.add(
                account=account,
                full_name=draft.full_name,
                birth_date=draft.birth_date,
                phone=draft.phone,
                group=draft.group,
                unit_id=draft.unit_id,
                position=draft.position,
                ward_id=draft.ward_id,
                consent_at=now,
                registered_at=now,
            )
            await uow.drafts.delete(account)
            await uow.commit()
            log.info("person %s registered (group %s)", person.id, person.group.value)
            return person

    async def _view(
        self, uow: UnitOfWork, draft: Draft, *, page: int = 0, query: str | None = None
    ) -> RegistrationView:
        unit_page: UnitPage | None = None
        if draft.step is Step.UNIT and draft.unit_kind is not None:
            unit_page = await uow.units.page(draft.unit_kind, page, UNIT_PAGE_SIZE, query)
        elif draft.step is Step.WARD:
            unit_page = await uow.units.page(UnitKind.WARD, page, UNIT_PAGE_SIZE, query)
        names: dict[str, Unit | None] | None = None
        if draft.step is Step.CONFIRM:
            names = {
                "unit": await uow.units.get(draft.unit_id) if draft.unit_id else None,
                "ward": await uow.units.get(draft.ward_id) if draft.ward_id else None,
            }
        return RegistrationView(draft, unit_page, names)
