"""Use cases of the contest. They speak no Telegram: adapters call them and render results."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from contest.clock import Clock
from contest.errors import Conflict, ContestError
from contest.importing import MAX_BANK_QUESTIONS, QuestionRow, UnitRow
from contest.model import (
    Attempt,
    AttemptItem,
    AttemptResult,
    AttemptStatus,
    Group,
    Person,
    Position,
    Question,
    Unit,
    UnitKind,
)
from contest.ports import (
    AttemptFinisher,
    AttemptTimer,
    ImportSummary,
    Notification,
    NullTimer,
    PressStoreFactory,
    UnitOfWork,
    UnitOfWorkFactory,
    UnitOfWorkPresses,
    UnitPage,
)
from contest.registration import (
    EDITABLE,
    Draft,
    Step,
    clean_name,
    normalize_phone,
    parse_birth_date,
)
from contest.rules import LOCAL_TZ, ContestRules, RoundRules
from contest.scoring import Qualification, Ranked, best_result, qualify, rank
from contest.selection import select_questions, shuffled_order

log = logging.getLogger(__name__)

UNIT_PAGE_SIZE = 8
QUESTION_CACHE_SECONDS = 60.0
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


# ---------------------------------------------------------------- views


@dataclass(frozen=True)
class RegistrationView:
    draft: Draft
    page: UnitPage | None = None
    units: dict[str, Unit | None] | None = None  # "unit", "ward" names for the summary


@dataclass(frozen=True)
class Profile:
    person: Person
    unit: Unit | None
    ward: Unit | None


@dataclass(frozen=True)
class ExamCard:
    attempt_id: int
    attempt_number: int
    position: int  # 0-based
    total: int
    topic: str
    text: str
    options: tuple[str, str, str]  # in displayed order (A, B, C)
    deadline_at: datetime
    time_left_seconds: float
    chat_id: int | None
    message_id: int | None


@dataclass(frozen=True)
class AttemptSummary:
    result: AttemptResult
    best: AttemptResult
    attempts_used: int
    attempts_allowed: int
    telegram_id: int
    chat_id: int | None
    message_id: int | None

    @property
    def attempts_left(self) -> int:
        return max(self.attempts_allowed - self.attempts_used, 0)


@dataclass(frozen=True)
class AnswerOutcome:
    next_card: ExamCard | None = None
    summary: AttemptSummary | None = None
    expired: bool = False  # the press came after the deadline and closed the attempt


class ExamState(StrEnum):
    NOT_REGISTERED = "not_registered"
    NOT_OPEN = "not_open"
    CLOSED = "closed"
    IN_PROGRESS = "in_progress"
    NO_ATTEMPTS_LEFT = "no_attempts_left"
    CAN_START = "can_start"


@dataclass(frozen=True)
class ExamStatus:
    state: ExamState
    round: RoundRules
    attempts_used: int = 0
    best: AttemptResult | None = None
    card: ExamCard | None = None

    @property
    def attempts_left(self) -> int:
        return max(self.round.attempts - self.attempts_used, 0)


@dataclass(frozen=True)
class ResultsView:
    results: list[AttemptResult]
    best: AttemptResult | None
    in_progress: bool
    attempts_allowed: int


@dataclass(frozen=True)
class Warning_:
    attempt_id: int
    telegram_id: int
    chat_id: int | None
    seconds_left: float


# ---------------------------------------------------------------- service


def _closed(attempt: Attempt) -> ContestError:
    """Why a press on a finished attempt is refused: its time ran out (whoever closed it:
    the deadline job, or this press), or it was submitted."""
    if attempt.status is AttemptStatus.EXPIRED:
        return ContestError("time_up")
    return ContestError("attempt_finished")


class ContestService:
    """Every use case of the contest, over a unit of work, a clock and the rules."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        rules: ContestRules,
        *,
        rng: random.Random | None = None,
        timer: AttemptTimer | None = None,
        presses: PressStoreFactory | None = None,
    ) -> None:
        self.uow = uow
        # Answers run in a press store of their own (see ``answer``); by default one over a
        # unit of work.
        self.presses: PressStoreFactory = presses or (lambda: UnitOfWorkPresses(uow()))
        self.clock = clock
        self.rules = rules
        self.rng = rng or random.SystemRandom()
        self.timer: AttemptTimer = timer or NullTimer()
        # Questions change only by import: a short-lived cache keeps them off the answer path.
        self._questions: dict[int, Question] = {}
        self._questions_loaded_at: datetime | None = None
        self._questions_refresh = asyncio.Lock()
        self._active_bank: list[Question] = []
        self._bank_loaded_at: datetime | None = None

    def today(self) -> date:
        return self.clock.now().astimezone(LOCAL_TZ).date()

    # ------------------------------------------------------------ registration

    async def profile(self, telegram_id: int) -> Profile | None:
        async with self.uow(write=False) as uow:
            person = await uow.persons.by_telegram(telegram_id)
            if person is None:
                return None
            unit = await uow.units.get(person.unit_id) if person.unit_id else None
            ward = await uow.units.get(person.ward_id) if person.ward_id else None
            return Profile(person, unit, ward)

    async def registration(self, telegram_id: int) -> RegistrationView | None:
        """The person's draft, or None when there is none."""
        async with self.uow(write=False) as uow:
            draft = await uow.drafts.get(telegram_id)
            if draft is None:
                return None
            return await self._view(uow, draft)

    async def begin_registration(self, telegram_id: int) -> RegistrationView:
        """Start (or resume) registration; refuses a person already registered."""
        async with self.uow() as uow:
            if await uow.persons.by_telegram(telegram_id):
                raise ContestError("already_registered")
            draft = await uow.drafts.get(telegram_id)
            if draft is None:
                draft = Draft()
                await uow.drafts.save(telegram_id, draft, self.clock.now())
                await uow.commit()
            return await self._view(uow, draft)

    async def register_input(self, telegram_id: int, step: Step, value: Any) -> RegistrationView:
        """Apply one answer of the registration conversation.

        ``value`` depends on the step: True for consent, text for name and birth date,
        (phone, contact_user_id) for the phone, a Group, a UnitKind, a unit id,
        a Position, or a ward unit id.
        """
        async with self.uow() as uow:
            if await uow.persons.by_telegram(telegram_id):
                raise ContestError("already_registered")
            draft = await uow.drafts.get(telegram_id)
            if draft is None:
                raise ContestError("no_registration")
            if draft.step is not step:
                raise ContestError("wrong_step", expected=draft.step.value)
            await self._apply(uow, telegram_id, draft, step, value)
            await uow.drafts.save(telegram_id, draft, self.clock.now())
            await uow.commit()
            return await self._view(uow, draft)

    async def _apply(
        self, uow: UnitOfWork, telegram_id: int, draft: Draft, step: Step, value: Any
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
            draft.birth_date = parse_birth_date(str(value), self.today())
            if draft.group is Group.CITIZEN:
                draft.check_age(self.today(), self.rules.min_age)
            draft.advance(Step.PHONE)
        elif step is Step.PHONE:
            phone_raw, contact_user_id = value
            if contact_user_id != telegram_id:
                raise ContestError("contact_not_own")
            phone = normalize_phone(str(phone_raw))
            owner = await uow.persons.by_phone(phone)
            if owner is not None and owner.telegram_id != telegram_id:
                raise ContestError("phone_taken")
            draft.phone = phone
            draft.advance(Step.GROUP)
        elif step is Step.GROUP:
            group = Group(value)
            if group is Group.CITIZEN:
                draft.group = group
                try:
                    draft.check_age(self.today(), self.rules.min_age)
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

    async def registration_text(self, telegram_id: int, text: str) -> RegistrationView:
        """Typed text during registration: the answer of a text step, or a unit search.

        Raises ``use_buttons`` / ``use_phone_button`` where a button is expected, and
        ``no_registration`` when the person has no registration under way.
        """
        async with self.uow(write=False) as uow:
            draft = await uow.drafts.get(telegram_id)
        if draft is None:
            raise ContestError("no_registration")
        if draft.step in (Step.NAME, Step.BIRTH_DATE):
            return await self.register_input(telegram_id, draft.step, text)
        if draft.step in (Step.UNIT, Step.WARD):
            return await self.unit_page(telegram_id, 0, text.strip()[:60] or None)
        if draft.step is Step.PHONE:
            raise ContestError("use_phone_button")
        raise ContestError("use_buttons")

    async def unit_kind_again(self, telegram_id: int) -> RegistrationView:
        """From the unit list, go back to choosing the kind of unit."""
        async with self.uow() as uow:
            draft = await uow.drafts.get(telegram_id)
            if draft is None or draft.step is not Step.UNIT:
                raise ContestError("wrong_step", expected=draft.step.value if draft else "")
            draft.step = Step.UNIT_KIND
            await uow.drafts.save(telegram_id, draft, self.clock.now())
            await uow.commit()
            return await self._view(uow, draft)

    async def unit_page(
        self, telegram_id: int, page: int, query: str | None = None
    ) -> RegistrationView:
        """Another page of units (or wards) for the current step, optionally filtered."""
        async with self.uow(write=False) as uow:
            draft = await uow.drafts.get(telegram_id)
            if draft is None or draft.step not in (Step.UNIT, Step.WARD):
                raise ContestError("wrong_step", expected=draft.step.value if draft else "")
            return await self._view(uow, draft, page=page, query=query)

    async def edit_field(self, telegram_id: int, field: str) -> RegistrationView:
        """From the summary, go back to one field; the summary returns after it."""
        if field not in EDITABLE:
            raise ContestError("wrong_step", expected="confirm")
        async with self.uow() as uow:
            draft = await uow.drafts.get(telegram_id)
            if draft is None or draft.step is not Step.CONFIRM:
                raise ContestError("wrong_step", expected=draft.step.value if draft else "")
            target = EDITABLE[field]
            if target is Step.POSITION and draft.group is not Group.CIVIL_SERVANT:
                raise ContestError("wrong_step", expected="confirm")
            if target is Step.WARD and draft.group is not Group.CITIZEN:
                raise ContestError("wrong_step", expected="confirm")
            if target is Step.UNIT_KIND and draft.group is not Group.CIVIL_SERVANT:
                raise ContestError("wrong_step", expected="confirm")
            draft.step = target
            draft.editing = True
            await uow.drafts.save(telegram_id, draft, self.clock.now())
            await uow.commit()
            return await self._view(uow, draft)

    async def confirm_registration(self, telegram_id: int) -> Person:
        async with self.uow() as uow:
            if await uow.persons.by_telegram(telegram_id):
                raise ContestError("already_registered")
            draft = await uow.drafts.get(telegram_id)
            if draft is None or draft.step is not Step.CONFIRM or draft.missing_step():
                raise ContestError("wrong_step", expected=draft.step.value if draft else "")
            draft.check_age(self.today(), self.rules.min_age)
            assert draft.phone and draft.full_name and draft.birth_date and draft.group
            if await uow.persons.by_phone(draft.phone):
                raise ContestError("phone_taken")
            now = self.clock.now()
            person = await uow.persons.add(
                telegram_id=telegram_id,
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
            await uow.drafts.delete(telegram_id)
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

    # ------------------------------------------------------------ exam

    def _round(self, number: int) -> RoundRules:
        return self.rules.round1 if number == 1 else self.rules.round2.round

    async def exam_status(self, telegram_id: int, round_number: int = 1) -> ExamStatus:
        rules = self._round(round_number)
        now = self.clock.now()
        async with self.uow(write=False) as uow:
            person = await uow.persons.by_telegram(telegram_id)
            if person is None:
                return ExamStatus(ExamState.NOT_REGISTERED, rules)
            results = await uow.attempts.results_for(person.id, round_number)
            used = await uow.attempts.count_for(person.id, round_number)
            best = best_result(results)
            current = await uow.attempts.in_progress(person.id, round_number)
            if current is not None and not current.expired_at(now):
                card = await self._card(uow, current, now)
                return ExamStatus(ExamState.IN_PROGRESS, rules, used, best, card)
            if rules.window.is_before(now):
                return ExamStatus(ExamState.NOT_OPEN, rules, used, best)
            if rules.window.is_after(now):
                return ExamStatus(ExamState.CLOSED, rules, used, best)
            if used >= rules.attempts:
                return ExamStatus(ExamState.NO_ATTEMPTS_LEFT, rules, used, best)
            return ExamStatus(ExamState.CAN_START, rules, used, best)

    async def start_attempt(
        self,
        telegram_id: int,
        round_number: int = 1,
        *,
        shown_in: tuple[int, int] | None = None,
    ) -> ExamCard:
        """Start a new attempt, or return the open one (never two at once).

        ``shown_in`` is the (chat, message) a new attempt's card is about to be shown in;
        it is stored with the attempt, so the deadline can retire that card.
        """
        try:
            return await self._start_attempt(telegram_id, round_number, shown_in)
        except Conflict:
            # Another process started one at the same moment (two presses of "Bắt đầu"
            # on two processes): start over, which finds that attempt and shows it.
            log.info("concurrent start for round %s: showing the other one", round_number)
        try:
            return await self._start_attempt(telegram_id, round_number, shown_in)
        except Conflict:
            raise ContestError("busy") from None

    async def _start_attempt(
        self, telegram_id: int, round_number: int, shown_in: tuple[int, int] | None
    ) -> ExamCard:
        rules = self._round(round_number)
        async with self.uow() as uow:
            now = self.clock.now()
            person = await uow.persons.by_telegram(telegram_id)
            if person is None:
                raise ContestError("not_registered")
            current = await uow.attempts.in_progress(person.id, round_number)
            if current is not None:
                if not current.expired_at(now):
                    return await self._card(uow, current, now)
                # Its deadline passed unnoticed: close it first, then decide.
                if (
                    await self._finish(uow, current, AttemptStatus.EXPIRED, now, notify=True)
                    is None
                ):
                    # Somebody closed it under us: another start (another process), whose
                    # new attempt this transaction may not see yet. Start over.
                    raise Conflict("attempt closed by a concurrent start")
            if not rules.window.contains(now):
                await uow.commit()
                closed = rules.window.is_after(now)
                raise ContestError("round_closed" if closed else "round_not_open")
            used = await uow.attempts.count_for(person.id, round_number)
            if used >= rules.attempts:
                # A start in another process may have committed between the two reads: its
                # attempt is the one to show, not a refusal.
                latest = await uow.attempts.in_progress(person.id, round_number)
                if latest is not None and not latest.expired_at(now):
                    return await self._card(uow, latest, now)
                await uow.commit()
                raise ContestError("no_attempts_left")
            bank = await self._bank(uow, rules.questions)
            ids = select_questions(bank, rules.questions, self.rng)
            items = [
                AttemptItem(position=i, question_id=qid, order=shuffled_order(self.rng))
                for i, qid in enumerate(ids)
            ]
            attempt = await uow.attempts.create(
                person_id=person.id,
                round=round_number,
                number=used + 1,
                started_at=now,
                deadline_at=now + rules.duration,
                items=items,
                chat_id=shown_in[0] if shown_in else None,
                message_id=shown_in[1] if shown_in else None,
            )
            card = await self._card(uow, attempt, now)
            await uow.commit()
        log.info("attempt %s started (person %s, round %s)", attempt.id, person.id, round_number)
        self.timer.arm(attempt.id, attempt.deadline_at)
        return card

    async def attach_message(self, attempt_id: int, chat_id: int, message_id: int) -> None:
        """Remember which message shows the exam card, so the deadline can update it."""
        async with self.uow() as uow:
            await uow.attempts.set_message(attempt_id, chat_id, message_id)
            await uow.commit()

    async def current_card(self, telegram_id: int, attempt_id: int) -> ExamCard:
        async with self.uow(write=False) as uow:
            attempt = await self._own_attempt(uow, telegram_id, attempt_id)
            if attempt.finished or attempt.expired_at(self.clock.now()):
                raise ContestError("attempt_finished")
            return await self._card(uow, attempt, self.clock.now())

    async def answer(
        self, telegram_id: int, attempt_id: int, position: int, choice: int
    ) -> AnswerOutcome:
        """Record one answer durably; it is committed before this returns.

        A press in time runs in a press store, the answer path's lean transaction, and
        finishes the attempt there when it answers the last question. A press after the
        deadline goes through a full unit of work, which closes the attempt.
        """
        if not 0 <= choice < 3:
            raise ContestError("stale_question")
        answered: Attempt | None = None
        async with self.presses() as store:
            now = self.clock.now()
            attempt = await store.owned(attempt_id, telegram_id)
            if attempt is None:
                raise ContestError("foreign_attempt")
            if attempt.finished:
                raise _closed(attempt)
            if not attempt.expired_at(now):
                current = attempt.current_position()
                if current is None or position != current:
                    raise ContestError("stale_question")
                item = attempt.items[position]
                # Graded against the bank as it is now (an import may have fixed a key);
                # the cache only serves the text of the next card.
                key = await store.answer_of(item.question_id)
                correct = item.order[choice] == key
                if not await store.record_answer(attempt.id, position, choice, correct, now):
                    raise ContestError("stale_question")
                item.choice, item.correct, item.answered_at = choice, correct, now
                if attempt.current_position() is None:
                    status = AttemptStatus.SUBMITTED
                    if not await self._mark_finished(store, attempt, status, now):
                        raise ContestError("attempt_finished")
                    summary = await self._summary_of(store, attempt, telegram_id)
                    # Durable with the finish: the reply shows it, else the outbox sends it.
                    await store.notify(
                        result_notification_key(attempt.id),
                        attempt.person_id,
                        RESULT_NOTIFICATION,
                        {"attempt_id": attempt.id},
                        now,
                        not_before=now + INLINE_RESULT_GRACE,
                        expires_at=now + RESULT_VALID_FOR,
                    )
                    await store.commit()
                    self.timer.disarm(attempt.id)
                    return AnswerOutcome(summary=summary)
                await store.commit()
                answered = attempt
        if answered is None:
            return await self._answer_late(telegram_id, attempt_id)
        # The next card once the press store is closed: a cache refresh needs a connection
        # of its own, and a press must never hold one while it waits for another.
        return AnswerOutcome(next_card=await self._card(None, answered, now))

    async def _answer_late(self, telegram_id: int, attempt_id: int) -> AnswerOutcome:
        """A press after the deadline: close the attempt (unless someone just did)."""
        async with self.uow() as uow:
            now = self.clock.now()
            attempt = await self._own_attempt(uow, telegram_id, attempt_id, lock=True)
            if attempt.finished or not attempt.expired_at(now):
                raise _closed(attempt)
            summary = await self._finish(
                uow, attempt, AttemptStatus.EXPIRED, now, notify=True, inline=True
            )
            await uow.commit()
        if summary is None:
            raise ContestError("time_up")
        self.timer.disarm(attempt.id)
        return AnswerOutcome(summary=summary, expired=True)

    async def results(self, telegram_id: int, round_number: int = 1) -> ResultsView:
        async with self.uow(write=False) as uow:
            person = await uow.persons.by_telegram(telegram_id)
            if person is None:
                raise ContestError("not_registered")
            results = await uow.attempts.results_for(person.id, round_number)
            current = await uow.attempts.in_progress(person.id, round_number)
            return ResultsView(
                sorted(results, key=lambda r: r.number),
                best_result(results),
                current is not None,
                self._round(round_number).attempts,
            )

    async def ranking(self, round_number: int = 1) -> list[Ranked]:
        """Everyone's counting attempt of a round, ranked (ties share a rank)."""
        async with self.uow(write=False) as uow:
            return rank(await uow.attempts.best_results(round_number))

    async def round2_qualifiers(self) -> Qualification:
        """The top of round 1 with at least the required share correct, ties at the cut."""
        round2 = self.rules.round2
        return qualify(await self.ranking(1), round2.qualifiers, round2.min_ratio)

    # ------------------------------------------------------------ deadlines

    async def close_expired(self, limit: int = 500) -> list[int]:
        """Close every attempt whose deadline has passed; returns the ids this call closed.

        Each closed attempt gets a durable result notification in the same transaction.
        """
        now = self.clock.now()
        async with self.uow(write=False) as uow:
            due = await uow.attempts.expired_ids(now, limit)
        closed: list[int] = []
        for attempt_id in due:
            if await self.close_if_expired(attempt_id):
                closed.append(attempt_id)
        return closed

    async def close_if_expired(self, attempt_id: int) -> bool:
        """Close one attempt if its deadline has passed and nobody closed it yet."""
        async with self.uow() as uow:
            now = self.clock.now()
            attempt = await uow.attempts.get(attempt_id, lock=True)
            if attempt is None or attempt.finished or not attempt.expired_at(now):
                return False
            summary = await self._finish(uow, attempt, AttemptStatus.EXPIRED, now, notify=True)
            await uow.commit()
        if summary is not None:
            log.info("attempt %s closed by its deadline", attempt_id)
        return summary is not None

    async def due_warnings(self) -> list[Warning_]:
        """Warnings (5 and 1 minutes left by default) that are due now; each is given once.

        Each goes into the outbox in the transaction that marks it given, so a send that
        fails is retried (``warning_for`` tells, at sending time, whether it still applies).
        """
        now = self.clock.now()
        warnings: list[Warning_] = []
        # Nearest warning first: one that is due marks the earlier ones as given too, so a
        # sweep that first runs inside the last minute sends one warning, not two.
        levels = sorted(enumerate(self.rules.warn_before), key=lambda lv: lv[1])
        for level, before in levels:
            async with self.uow(write=False) as uow:
                candidates = await uow.attempts.warn_candidates(now, before.total_seconds(), level)
            for attempt_id in candidates:
                async with self.uow() as uow:
                    attempt = await uow.attempts.get(attempt_id)
                    if attempt is None or attempt.finished or attempt.expired_at(now):
                        continue
                    if not await uow.attempts.mark_warned(attempt_id, level + 1):
                        continue
                    person = await uow.persons.get(attempt.person_id)
                    await uow.outbox.add(
                        f"{WARNING_NOTIFICATION}:{attempt_id}:{level + 1}",
                        attempt.person_id,
                        WARNING_NOTIFICATION,
                        {"attempt_id": attempt_id},
                        now,
                        expires_at=attempt.deadline_at,  # worth nothing after the deadline
                    )
                    await uow.commit()
                assert person is not None
                warnings.append(
                    Warning_(
                        attempt_id,
                        person.telegram_id,
                        attempt.chat_id,
                        attempt.time_left(now).total_seconds(),
                    )
                )
        return warnings

    async def warning_for(self, attempt_id: int) -> Warning_ | None:
        """A queued warning as it stands now; None once the attempt is over or overdue."""
        async with self.uow(write=False) as uow:
            now = self.clock.now()
            attempt = await uow.attempts.get(attempt_id)
            if attempt is None or attempt.finished or attempt.expired_at(now):
                return None
            person = await uow.persons.get(attempt.person_id)
            assert person is not None
            return Warning_(
                attempt_id,
                person.telegram_id,
                attempt.chat_id,
                attempt.time_left(now).total_seconds(),
            )

    async def open_deadlines(self) -> list[tuple[int, datetime]]:
        """Every attempt still in progress with its deadline (to re-arm timers)."""
        async with self.uow(write=False) as uow:
            return await uow.attempts.open_deadlines()

    async def open_deadline(self, attempt_id: int) -> datetime | None:
        """The deadline of an attempt still in progress, else None."""
        async with self.uow(write=False) as uow:
            attempt = await uow.attempts.get(attempt_id)
            return attempt.deadline_at if attempt and not attempt.finished else None

    async def attempt_summary(self, attempt_id: int) -> AttemptSummary | None:
        async with self.uow(write=False) as uow:
            attempt = await uow.attempts.get(attempt_id)
            if attempt is None or not attempt.finished:
                return None
            return await self._summary(uow, attempt)

    # ------------------------------------------------------------ notifications

    async def claim_notifications(
        self, owner: str, limit: int = 50, lease_seconds: float = 60.0
    ) -> list[Notification]:
        """Take pending notifications for sending; a claim lapses after ``lease_seconds``.

        Deadline warnings come first: "1 minute left" is worth nothing late, and a wave of
        results (many attempts running out together) must not hold it back.
        """
        async with self.uow() as uow:
            now = self.clock.now()
            claimed = await uow.outbox.claim(
                now, lease_seconds, limit, owner, kinds=[WARNING_NOTIFICATION]
            )
            if len(claimed) < limit:
                claimed += await uow.outbox.claim(now, lease_seconds, limit - len(claimed), owner)
            await uow.commit()
            return claimed

    async def notification_sent(self, notification_id: int) -> None:
        async with self.uow() as uow:
            await uow.outbox.mark_sent(notification_id, self.clock.now())
            await uow.commit()

    async def notification_ended(
        self, notification_id: int, outcome: str, error: str | None = None
    ) -> None:
        """End a notification unsent: the platform refused it for good (``blocked``,
        ``refused``: the row keeps why) or there was nothing left to say (``skipped``)."""
        async with self.uow() as uow:
            await uow.outbox.end(notification_id, self.clock.now(), outcome, error)
            await uow.commit()

    async def notification_retry(self, note: Notification, error: str) -> datetime:
        """A transient failure (network, 5xx, 429): the notification is offered again after
        a back-off, for as long as it is valid. Returns when."""
        when = self.clock.now() + retry_delay(note.tries)
        async with self.uow() as uow:
            await uow.outbox.retry_at(note.id, error, when)
            await uow.commit()
        return when

    async def result_shown(self, attempt_id: int) -> bool:
        """The reply to a press showed this attempt's result: the outbox need not send it.
        False when the outbox has already taken it (it is then sent as well: at least once)."""
        async with self.uow() as uow:
            ended = await uow.outbox.end_pending(
                result_notification_key(attempt_id), self.clock.now(), "inline"
            )
            await uow.commit()
        return ended

    # ------------------------------------------------------------ imports

    async def import_questions(
        self, rows: Sequence[QuestionRow], *, replace: bool = False
    ) -> ImportSummary:
        """Import the bank; ``replace`` makes the file the whole active bank. A replacing
        import that would leave fewer questions than one attempt draws is refused."""
        needed = max(self.rules.round1.questions, self.rules.round2.round.questions)
        if replace and len(rows) < needed:
            raise ContestError("bank_would_be_too_small", needed=needed, available=len(rows))
        if len(rows) > MAX_BANK_QUESTIONS:
            raise ContestError("bank_too_large", limit=MAX_BANK_QUESTIONS, total=len(rows))
        async with self.uow() as uow:
            summary = await uow.questions.upsert(rows, replace=replace)
            # The bot caches the whole active bank: past the cap, nothing is committed.
            total = await uow.questions.count()
            if total > MAX_BANK_QUESTIONS:
                raise ContestError("bank_too_large", limit=MAX_BANK_QUESTIONS, total=total)
            await uow.commit()
        self._questions_loaded_at = self._bank_loaded_at = None
        return summary

    async def import_units(self, rows: Sequence[UnitRow]) -> ImportSummary:
        async with self.uow() as uow:
            summary = await uow.units.upsert(rows)
            await uow.commit()
            return summary

    # ------------------------------------------------------------ helpers

    async def _own_attempt(
        self, uow: UnitOfWork, telegram_id: int, attempt_id: int, *, lock: bool = False
    ) -> Attempt:
        attempt = await uow.attempts.owned(attempt_id, telegram_id, lock=lock)
        if attempt is None:
            raise ContestError("foreign_attempt")
        return attempt

    async def _bank(self, uow: UnitOfWork, needed: int) -> list[Question]:
        """The active questions to draw from, cached like the questions themselves (read
        again while the cache holds fewer than ``needed``: a first import may be under way)."""
        if not self._fresh(self._bank_loaded_at) or len(self._active_bank) < needed:
            self._active_bank = await uow.questions.catalog()
            self._bank_loaded_at = self.clock.now()
        return self._active_bank

    async def _question(self, uow: UnitOfWork | None, question_id: int) -> Question:
        """A question from the cache, refreshed every QUESTION_CACHE_SECONDS or on a miss.

        Inside a unit of work the refresh reads through it. Without one (the answer path,
        its press store closed) one refresh runs at a time and the presses that found the
        cache stale together wait for it; none of them holds a connection meanwhile.
        """
        if not self._cache_stale(question_id):
            return self._questions[question_id]
        if uow is not None:
            self._load_questions(await uow.questions.catalog(include_inactive=True))
            return self._questions[question_id]
        async with self._questions_refresh:
            if self._cache_stale(question_id):  # nobody refreshed it while we waited
                async with self.uow(write=False) as reading:
                    self._load_questions(await reading.questions.catalog(include_inactive=True))
        return self._questions[question_id]

    def _load_questions(self, catalog: Sequence[Question]) -> None:
        self._questions = {q.id: q for q in catalog}
        self._questions_loaded_at = self.clock.now()

    def _cache_stale(self, question_id: int) -> bool:
        return question_id not in self._questions or not self._fresh(self._questions_loaded_at)

    def _fresh(self, loaded_at: datetime | None) -> bool:
        """Whether a cache loaded at ``loaded_at`` is still young (a clock moved back makes
        it stale too)."""
        if loaded_at is None:
            return False
        return 0 <= (self.clock.now() - loaded_at).total_seconds() < QUESTION_CACHE_SECONDS

    async def _card(self, uow: UnitOfWork | None, attempt: Attempt, now: datetime) -> ExamCard:
        position = attempt.current_position()
        if position is None:
            raise ContestError("attempt_finished")
        item = attempt.items[position]
        question = await self._question(uow, item.question_id)
        options = tuple(question.options[i] for i in item.order)
        return ExamCard(
            attempt_id=attempt.id,
            attempt_number=attempt.number,
            position=position,
            total=attempt.total,
            topic=question.topic,
            text=question.text,
            options=(options[0], options[1], options[2]),
            deadline_at=attempt.deadline_at,
            time_left_seconds=attempt.time_left(now).total_seconds(),
            chat_id=attempt.chat_id,
            message_id=attempt.message_id,
        )

    async def _finish(
        self,
        uow: UnitOfWork,
        attempt: Attempt,
        status: AttemptStatus,
        now: datetime,
        *,
        notify: bool = False,
        inline: bool = False,
    ) -> AttemptSummary | None:
        """Compare-and-set the attempt to finished; None when another path already did.

        ``notify`` queues the result in the outbox in the same transaction; ``inline`` says
        the caller shows it in its reply and confirms with ``result_shown`` (the outbox
        waits INLINE_RESULT_GRACE for that before it sends)."""
        if not await self._mark_finished(uow.attempts, attempt, status, now):
            return None
        if notify:
            await uow.outbox.add(
                result_notification_key(attempt.id),
                attempt.person_id,
                RESULT_NOTIFICATION,
                {"attempt_id": attempt.id},
                now,
                not_before=now + INLINE_RESULT_GRACE if inline else None,
                expires_at=now + RESULT_VALID_FOR,
            )
        return await self._summary(uow, attempt)

    @staticmethod
    async def _mark_finished(
        attempts: AttemptFinisher, attempt: Attempt, status: AttemptStatus, now: datetime
    ) -> bool:
        """The compare-and-set itself; on success ``attempt`` shows the result."""
        correct = sum(1 for item in attempt.items if item.correct)
        if status is AttemptStatus.EXPIRED:
            finished_at = attempt.deadline_at
        else:
            finished_at = min(now, attempt.deadline_at)
        duration = (finished_at - attempt.started_at).total_seconds()
        if not await attempts.finish(attempt.id, status, finished_at, correct, duration):
            return False
        attempt.status, attempt.finished_at = status, finished_at
        attempt.correct_count, attempt.duration_seconds = correct, duration
        return True

    async def _summary(self, uow: UnitOfWork, attempt: Attempt) -> AttemptSummary:
        person = await uow.persons.get(attempt.person_id)
        assert person is not None
        return await self._summary_of(uow.attempts, attempt, person.telegram_id)

    async def _summary_of(
        self, attempts: AttemptFinisher, attempt: Attempt, telegram_id: int
    ) -> AttemptSummary:
        results = await attempts.results_for(attempt.person_id, attempt.round)
        this = next(r for r in results if r.attempt_id == attempt.id)
        best = best_result(results) or this
        return AttemptSummary(
            result=this,
            best=best,
            attempts_used=await attempts.count_for(attempt.person_id, attempt.round),
            attempts_allowed=self._round(attempt.round).attempts,
            telegram_id=telegram_id,
            chat_id=attempt.chat_id,
            message_id=attempt.message_id,
        )
