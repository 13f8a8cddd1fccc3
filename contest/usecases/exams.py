"""Attempts: what a person can do now, starting an attempt, answering, and the deadline
(closing overdue attempts, warnings). The database decides every deadline; timers only make
it happen on time, and a compare-and-set decides who finishes an attempt, exactly once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from contest.errors import Conflict, ContestError
from contest.model import Account, Attempt, AttemptItem, AttemptResult, AttemptStatus
from contest.ports import VOIDED_KEY, AttemptFinisher, UnitOfWork
from contest.rules import RoundRules
from contest.scoring import best_result
from contest.selection import select_avoiding, select_questions, shuffled_order
from contest.usecases.base import UseCase
from contest.usecases.outbox import (
    INLINE_RESULT_GRACE,
    RESULT_NOTIFICATION,
    RESULT_VALID_FOR,
    WARNING_NOTIFICATION,
    result_notification_key,
)
from contest.usecases.predictions import parse_count
from contest.usecases.rounds import admit_round2

log = logging.getLogger(__name__)


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
    round: int = 1


@dataclass(frozen=True)
class AttemptSummary:
    result: AttemptResult
    best: AttemptResult
    attempts_used: int
    attempts_allowed: int
    account: Account | None  # where to tell the person (the account they used last)
    chat_id: int | None
    message_id: int | None
    # The tie rule asks for a prediction: the result says the attempt's (or its absence).
    predicting: bool = False

    @property
    def attempts_left(self) -> int:
        return max(self.attempts_allowed - self.attempts_used, 0)


# With the prediction question, an attempt finished by its last answer waits for the typed
# prediction until its deadline; its result goes out through the outbox then (this long
# after the deadline, so a prediction typed at the last moment is shown in the reply, and
# the outbox row is ended before it is offered), unless the reply to the prediction showed
# it first.
PREDICTION_RESULT_GRACE = timedelta(seconds=5)


@dataclass(frozen=True)
class PredictionAsk:
    """The prediction question an attempt ends with, until its deadline."""

    attempt_id: int
    round: int
    question: str
    deadline_at: datetime
    time_left_seconds: float
    chat_id: int | None
    message_id: int | None


@dataclass(frozen=True)
class AnswerOutcome:
    next_card: ExamCard | None = None
    summary: AttemptSummary | None = None
    expired: bool = False  # the press came after the deadline and closed the attempt
    # The last answer finished the attempt and the tie rule asks for a prediction: show the
    # question, not yet the result (``summary`` is the result without a prediction).
    ask: PredictionAsk | None = None


class ExamState(StrEnum):
    NOT_REGISTERED = "not_registered"
    NOT_OPEN = "not_open"
    CLOSED = "closed"
    IN_PROGRESS = "in_progress"
    LOCKED = "locked"  # an organiser locked the account: no new attempt
    NO_ATTEMPTS_LEFT = "no_attempts_left"
    CAN_START = "can_start"
    AWAITING_PREDICTION = "awaiting_prediction"  # answers done, the prediction not typed yet


@dataclass(frozen=True)
class ExamStatus:
    state: ExamState
    round: RoundRules
    attempts_used: int = 0
    best: AttemptResult | None = None
    card: ExamCard | None = None
    lock_reason: str | None = None  # why the account is locked (state LOCKED)
    ask: PredictionAsk | None = None  # state AWAITING_PREDICTION

    @property
    def attempts_left(self) -> int:
        return max(self.round.attempts - self.attempts_used, 0)


@dataclass(frozen=True)
class Warning_:
    attempt_id: int
    account: Account | None
    chat_id: int | None
    seconds_left: float


def _closed(attempt: Attempt) -> ContestError:
    """Why a press on a finished attempt is refused: its time ran out (whoever closed it:
    the deadline job, or this press), or it was submitted."""
    if attempt.status is AttemptStatus.EXPIRED:
        return ContestError("time_up")
    return ContestError("attempt_finished")


class Exams(UseCase):
    """Round 1 (and, with its own rules, round 2) attempts of one person at a time."""

    def _round(self, number: int) -> RoundRules:
        return self.rules.round1 if number == 1 else self.rules.round2.round

    async def exam_status(self, account: Account, round_number: int = 1) -> ExamStatus:
        rules = self._round(round_number)
        now = self.clock.now()
        async with self.uow(write=False) as uow:
            person = await uow.persons.by_account(account)
            if person is None:
                return ExamStatus(ExamState.NOT_REGISTERED, rules)
            results = await uow.attempts.results_for(person.id, round_number)
            used = await uow.attempts.count_for(person.id, round_number)
            best = best_result(results)
            current = await uow.attempts.in_progress(person.id, round_number)
            if current is not None and not current.expired_at(now):
                card = await self._card(uow, current, now)
                return ExamStatus(ExamState.IN_PROGRESS, rules, used, best, card)
            if self.rules.uses_prediction:
                waiting = await uow.attempts.awaiting_prediction(person.id, now)
                if waiting is not None and waiting.round == round_number:
                    return ExamStatus(
                        ExamState.AWAITING_PREDICTION,
                        rules,
                        used,
                        best,
                        ask=self._ask(waiting, now),
                    )
            if person.locked:  # an open attempt may be finished (above), no new one
                return ExamStatus(
                    ExamState.LOCKED, rules, used, best, lock_reason=person.lock_reason
                )
            if rules.window.is_before(now):
                return ExamStatus(ExamState.NOT_OPEN, rules, used, best)
            if rules.window.is_after(now):
                return ExamStatus(ExamState.CLOSED, rules, used, best)
            if used >= rules.attempts:
                return ExamStatus(ExamState.NO_ATTEMPTS_LEFT, rules, used, best)
            return ExamStatus(ExamState.CAN_START, rules, used, best)

    async def start_attempt(
        self,
        account: Account,
        round_number: int = 1,
        *,
        shown_in: tuple[int, int] | None = None,
    ) -> ExamCard:
        """Start a new attempt, or return the open one (never two at once).

        ``shown_in`` is the (chat, message) a new attempt's card is about to be shown in;
        it is stored with the attempt, so the deadline can retire that card.
        """
        try:
            return await self._start_attempt(account, round_number, shown_in)
        except Conflict:
            # Another process started one at the same moment (two presses of "Bắt đầu"
            # on two processes): start over, which finds that attempt and shows it.
            log.info("concurrent start for round %s: showing the other one", round_number)
        try:
            return await self._start_attempt(account, round_number, shown_in)
        except Conflict:
            raise ContestError("busy") from None

    async def _start_attempt(
        self, account: Account, round_number: int, shown_in: tuple[int, int] | None
    ) -> ExamCard:
        rules = self._round(round_number)
        async with self.uow() as uow:
            now = self.clock.now()
            person = await uow.persons.by_account(account)
            if person is None:
                raise ContestError("not_registered")
            await uow.accounts.touch(account, now)  # results go where the person is now
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
            if person.locked:
                await uow.commit()  # an overdue attempt closed above stays closed
                raise ContestError("account_locked", reason=person.lock_reason or "")
            if round_number == 2 and not await uow.round2.is_qualifier(person.id):
                await uow.commit()
                raise ContestError("round2_not_qualified")  # not on the confirmed list
            if not rules.window.contains(now):
                await uow.commit()
                closed = rules.window.is_after(now)
                raise ContestError("round_closed" if closed else "round_not_open")
            refused = await admit_round2(uow, person.id) if round_number == 2 else None
            if refused is not None:  # the session code not set, or not typed
                await uow.commit()
                raise ContestError(refused)
            # The last attempt still waits for its prediction (a stale «Bắt đầu»): a new
            # one would leave that prediction impossible to type.
            if (
                round_number == 1
                and self.rules.uses_prediction
                and await uow.attempts.awaiting_prediction(person.id, now) is not None
            ):
                await uow.commit()
                raise ContestError("prediction_pending")
            used = await uow.attempts.count_for(person.id, round_number)
            if used >= rules.attempts:
                # A start in another process may have committed between the two reads: its
                # attempt is the one to show, not a refusal.
                latest = await uow.attempts.in_progress(person.id, round_number)
                if latest is not None and not latest.expired_at(now):
                    return await self._card(uow, latest, now)
                await uow.commit()
                raise ContestError("no_attempts_left")
            bank = await self.ctx.bank.active(uow, rules.questions)
            if round_number == 2:  # questions the person saw in round 1 last, if at all
                seen = await uow.round2.seen_questions(person.id, 1)
                ids = select_avoiding(bank, rules.questions, self.ctx.rng, seen)
            else:
                ids = select_questions(bank, rules.questions, self.ctx.rng)
            items = [
                AttemptItem(position=i, question_id=qid, order=shuffled_order(self.ctx.rng))
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
        self.ctx.timer.arm(attempt.id, attempt.deadline_at)
        return card

    async def attach_message(self, attempt_id: int, chat_id: int, message_id: int) -> None:
        """Remember which message shows the exam card, so the deadline can update it."""
        async with self.uow() as uow:
            await uow.attempts.set_message(attempt_id, chat_id, message_id)
            await uow.commit()

    async def current_card(self, account: Account, attempt_id: int) -> ExamCard:
        async with self.uow(write=False) as uow:
            attempt = await self._own_attempt(uow, account, attempt_id)
            if attempt.finished or attempt.expired_at(self.clock.now()):
                raise ContestError("attempt_finished")
            return await self._card(uow, attempt, self.clock.now())

    async def answer(
        self, account: Account, attempt_id: int, position: int, choice: int
    ) -> AnswerOutcome:
        """Record one answer durably; it is committed before this returns.

        A press in time runs in a press store, the answer path's lean transaction, and
        finishes the attempt there when it answers the last question. A press after the
        deadline goes through a full unit of work, which closes the attempt.
        """
        if not 0 <= choice < 3:
            raise ContestError("stale_question")
        answered: Attempt | None = None
        assert self.ctx.presses is not None
        async with self.ctx.presses() as store:
            now = self.clock.now()
            attempt = await store.owned(attempt_id, account)
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
                correct = key == VOIDED_KEY or item.order[choice] == key  # void: all right
                if not await store.record_answer(attempt.id, position, choice, correct, now):
                    raise ContestError("stale_question")
                item.choice, item.correct, item.answered_at = choice, correct, now
                if attempt.current_position() is None:
                    status = AttemptStatus.SUBMITTED
                    if not await self._mark_finished(store, attempt, status, now):
                        raise ContestError("attempt_finished")
                    summary = await self._summary_of(store, attempt, account)
                    # Round 1 only: round 2's ties go by time (contest.usecases.predictions).
                    predicting = self.rules.uses_prediction and attempt.round == 1
                    ask = self._ask(attempt, now) if predicting else None
                    # Durable with the finish: the reply shows it, else the outbox sends it
                    # (with a prediction to wait for, once its time is over).
                    not_before = now + INLINE_RESULT_GRACE
                    if ask is not None:
                        not_before = max(not_before, ask.deadline_at + PREDICTION_RESULT_GRACE)
                    await store.notify(
                        result_notification_key(attempt.id),
                        attempt.person_id,
                        RESULT_NOTIFICATION,
                        {"attempt_id": attempt.id},
                        now,
                        not_before=not_before,
                        expires_at=now + RESULT_VALID_FOR,
                    )
                    await store.commit()
                    self.ctx.timer.disarm(attempt.id)
                    return AnswerOutcome(summary=summary, ask=ask)
                await store.commit()
                answered = attempt
        if answered is None:
            return await self._answer_late(account, attempt_id)
        # The next card once the press store is closed: a cache refresh needs a connection
        # of its own, and a press must never hold one while it waits for another.
        return AnswerOutcome(next_card=await self._card(None, answered, now))

    async def _answer_late(self, account: Account, attempt_id: int) -> AnswerOutcome:
        """A press after the deadline: close the attempt (unless someone just did)."""
        async with self.uow() as uow:
            now = self.clock.now()
            attempt = await self._own_attempt(uow, account, attempt_id, lock=True)
            if attempt.finished or not attempt.expired_at(now):
                raise _closed(attempt)
            summary = await self._finish(
                uow, attempt, AttemptStatus.EXPIRED, now, notify=True, inline=True
            )
            await uow.commit()
        if summary is None:
            raise ContestError("time_up")
        self.ctx.timer.disarm(attempt.id)
        return AnswerOutcome(summary=summary, expired=True)

    # ------------------------------------------------------------ the prediction

    async def awaiting_prediction(self, account: Account) -> PredictionAsk | None:
        """The prediction question the person's last attempt waits for, if any."""
        if not self.rules.uses_prediction:
            return None
        async with self.uow(write=False) as uow:
            now = self.clock.now()
            person = await uow.persons.by_account(account)
            if person is None:
                return None
            waiting = await uow.attempts.awaiting_prediction(person.id, now)
            return self._ask(waiting, now) if waiting is not None else None

    async def predict(self, account: Account, text: str) -> AttemptSummary | None:
        """A typed prediction for the attempt that waits for one: stored, and the result
        (with it) returned. None when no attempt waits for one (its deadline passed: the
        attempt stands without a prediction). Not a non-negative whole number up to
        MAX_PREDICTION: ``prediction_invalid``, and nothing changes."""
        if await self.awaiting_prediction(account) is None:
            return None
        value = parse_count(text)
        if value is None:
            raise ContestError("prediction_invalid")
        async with self.uow() as uow:
            now = self.clock.now()
            person = await uow.persons.by_account(account)
            if person is None:
                return None
            # Read again under the write lock: the deadline is checked with the store.
            waiting = await uow.attempts.awaiting_prediction(person.id, now)
            if waiting is None or not await uow.attempts.set_prediction(waiting.id, value):
                return None
            waiting.prediction = value
            await uow.accounts.touch(account, now)
            summary = await self._summary(uow, waiting)
            await uow.commit()
        log.info("attempt %s: prediction stored", waiting.id)
        return summary

    def _ask(self, attempt: Attempt, now: datetime) -> PredictionAsk:
        return PredictionAsk(
            attempt_id=attempt.id,
            round=attempt.round,
            question=self.rules.prediction_question,
            deadline_at=attempt.deadline_at,
            time_left_seconds=attempt.time_left(now).total_seconds(),
            chat_id=attempt.chat_id,
            message_id=attempt.message_id,
        )

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
                    account = await uow.accounts.preferred(attempt.person_id)
                    await uow.outbox.add(
                        f"{WARNING_NOTIFICATION}:{attempt_id}:{level + 1}",
                        attempt.person_id,
                        WARNING_NOTIFICATION,
                        {"attempt_id": attempt_id},
                        now,
                        expires_at=attempt.deadline_at,  # worth nothing after the deadline
                    )
                    await uow.commit()
                warnings.append(
                    Warning_(
                        attempt_id,
                        account,
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
            return Warning_(
                attempt_id,
                await uow.accounts.preferred(attempt.person_id),
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

    async def result_shown(self, attempt_id: int) -> bool:
        """The reply to a press showed this attempt's result: the outbox need not send it.
        False when the outbox has already taken it (it is then sent as well: at least once)."""
        async with self.uow() as uow:
            ended = await uow.outbox.end_pending(
                result_notification_key(attempt_id), self.clock.now(), "inline"
            )
            await uow.commit()
        return ended

    # ------------------------------------------------------------ helpers

    async def _own_attempt(
        self, uow: UnitOfWork, account: Account, attempt_id: int, *, lock: bool = False
    ) -> Attempt:
        attempt = await uow.attempts.owned(attempt_id, account, lock=lock)
        if attempt is None:
            raise ContestError("foreign_attempt")
        return attempt

    async def _card(self, uow: UnitOfWork | None, attempt: Attempt, now: datetime) -> ExamCard:
        position = attempt.current_position()
        if position is None:
            raise ContestError("attempt_finished")
        item = attempt.items[position]
        question = await self.ctx.bank.question(uow, item.question_id)
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
            round=attempt.round,
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
        account = await uow.accounts.preferred(attempt.person_id)
        return await self._summary_of(uow.attempts, attempt, account)

    async def _summary_of(
        self, attempts: AttemptFinisher, attempt: Attempt, account: Account | None
    ) -> AttemptSummary:
        results = await attempts.results_for(attempt.person_id, attempt.round)
        this = next(r for r in results if r.attempt_id == attempt.id)
        if attempt.prediction is not None and this.prediction is None:
            this = this._replace(prediction=attempt.prediction)  # the press store's rows
        best = best_result(results) or this
        return AttemptSummary(
            result=this,
            best=best,
            attempts_used=await attempts.count_for(attempt.person_id, attempt.round),
            attempts_allowed=self._round(attempt.round).attempts,
            account=account,
            chat_id=attempt.chat_id,
            message_id=attempt.message_id,
            predicting=self.rules.uses_prediction,
        )
