"""Contestants' feedback: a question or a complaint sent to the organisers (``/gopy``),
maybe about one question of one of their finished attempts; the organisers list the open
items, answer one (the answer goes to the contestant through the outbox, once) or close it
without an answer. Everything is kept; answering and closing are audited."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from contest.errors import ContestError
from contest.model import Account, Attempt, AttemptItem, Person, Question
from contest.ports import FeedbackItem, UnitOfWork
from contest.usecases.base import UseCase
from contest.usecases.staff import Actor, audit

FEEDBACK_ANSWER_NOTIFICATION = "feedback_answer"
TEXT_MAX = 2000  # characters of a feedback or of an answer (a chat message holds 4,096)
PER_HOUR = 3  # items one person may send within RATE_WINDOW
RATE_WINDOW = timedelta(hours=1)
PAGE_SIZE = 4  # open items on one page of the organisers' list (one chat message)
ANSWER_VALID_FOR = timedelta(days=14)  # an answer not delivered by then is given up
OPEN, ANSWERED, CLOSED = "open", "answered", "closed"
# Invisible or direction-changing characters: they hide or reorder what the text says.
_INVISIBLE = frozenset(
    "\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)


def clean_text(text: str, limit: int = TEXT_MAX) -> str:
    """A feedback or an answer as it is kept: NFC, line breaks as ``\\n``, trimmed; 1 to
    ``limit`` characters, no control character but line breaks and tabs."""
    cleaned = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    cleaned = cleaned.strip()
    if not cleaned:
        raise ContestError("feedback_empty", limit=limit)
    for ch in cleaned:
        if (unicodedata.category(ch) == "Cc" and ch not in "\n\t") or ch in _INVISIBLE:
            raise ContestError("feedback_control", char=f"U+{ord(ch):04X}")
    if len(cleaned) > limit:
        raise ContestError("feedback_too_long", limit=limit, length=len(cleaned))
    return cleaned


@dataclass(frozen=True)
class AttemptQuestion:
    """One question of an attempt as the contestant saw it: the options in that attempt's
    order (labels A, B, C), the label of the key and of the choice made."""

    position: int  # 0-based
    question_id: int
    topic: str
    text: str
    options: tuple[str, ...]
    key: int | None  # label index of the right option (None: unknown, e.g. voided)
    choice: int | None  # label index pressed (None: not answered)


@dataclass(frozen=True)
class AttemptQuestions:
    attempt_id: int
    round: int
    number: int
    questions: list[AttemptQuestion]


@dataclass(frozen=True)
class FeedbackView:
    """An item with what the organisers need to judge it."""

    item: FeedbackItem
    person: Person | None
    place: str | None  # the unit of a civil servant, the ward of a citizen
    attempt_number: int | None
    question: AttemptQuestion | None


@dataclass(frozen=True)
class FeedbackPage:
    views: list[FeedbackView]
    page: int
    pages: int
    total: int  # open items
    newest_first: bool


def _as_shown(
    items: Sequence[AttemptItem], questions: dict[int, Question]
) -> list[AttemptQuestion]:
    shown = []
    for item in items:
        question = questions.get(item.question_id)
        if question is None:
            continue
        order = tuple(item.order)
        shown.append(
            AttemptQuestion(
                position=item.position,
                question_id=question.id,
                topic=question.topic,
                text=question.text,
                options=tuple(question.options[i] for i in order),
                key=order.index(question.answer) if question.answer in order else None,
                choice=item.choice,
            )
        )
    return shown


class Feedback(UseCase):
    # ------------------------------------------------------------------ contestants

    async def can_send(self, account: Account) -> Person:
        """The registered person behind ``account``, if they may send feedback now
        (``not_registered``, ``feedback_rate`` otherwise)."""
        async with self.uow(write=False) as uow:
            person = await self._person(uow, account)
            await self._check_rate(uow, person, self.clock.now())
            return person

    async def attempt_questions(self, account: Account, attempt_id: int) -> AttemptQuestions:
        """The questions of one of the person's finished attempts, to pick from."""
        async with self.uow(write=False) as uow:
            await self._person(uow, account)
            attempt = await self._finished_attempt(uow, account, attempt_id)
            questions = await uow.questions.get_many([i.question_id for i in attempt.items])
            return AttemptQuestions(
                attempt.id, attempt.round, attempt.number, _as_shown(attempt.items, questions)
            )

    async def submit(
        self,
        account: Account,
        text: str,
        *,
        attempt_id: int | None = None,
        position: int | None = None,
    ) -> FeedbackItem:
        """Keep a person's feedback (about a question of a finished attempt of theirs, if
        given): at most PER_HOUR items an hour."""
        cleaned = clean_text(text)
        async with self.uow() as uow:
            person = await self._person(uow, account)
            now = self.clock.now()
            await self._check_rate(uow, person, now)
            question_id = None
            if attempt_id is not None:
                attempt = await self._finished_attempt(uow, account, attempt_id)
                if position is not None:
                    if not 0 <= position < len(attempt.items):
                        raise ContestError("feedback_question_unknown")
                    question_id = attempt.items[position].question_id
            elif position is not None:
                raise ContestError("feedback_question_unknown")
            item = await uow.feedback.add(
                person_id=person.id,
                text=cleaned,
                now=now,
                attempt_id=attempt_id,
                question_id=question_id,
                position=position if attempt_id is not None else None,
            )
            await uow.commit()
            return item

    # ------------------------------------------------------------------ organisers

    async def open_page(self, page: int, *, newest_first: bool = False) -> FeedbackPage:
        async with self.uow(write=False) as uow:
            total = await uow.feedback.count_open()
            pages = max(1, math.ceil(total / PAGE_SIZE))
            page = min(max(page, 0), pages - 1)
            items = await uow.feedback.open_page(
                page * PAGE_SIZE, PAGE_SIZE, newest_first=newest_first
            )
            views = [await self._view(uow, item) for item in items]
            return FeedbackPage(views, page, pages, total, newest_first)

    async def view(self, feedback_id: int) -> FeedbackView:
        async with self.uow(write=False) as uow:
            item = await uow.feedback.get(feedback_id)
            if item is None:
                raise ContestError("feedback_unknown", id=feedback_id)
            return await self._view(uow, item)

    async def answer(self, actor: Actor, feedback_id: int, text: str) -> FeedbackView:
        """Answer an open item and close it: the answer goes to the contestant through the
        outbox (once per item), in the transaction that records it and its audit entry."""
        cleaned = clean_text(text)
        async with self.uow() as uow:
            item = await uow.feedback.get(feedback_id)
            if item is None:
                raise ContestError("feedback_unknown", id=feedback_id)
            now = self.clock.now()
            if not await uow.feedback.answer(feedback_id, cleaned, actor.key, now):
                raise ContestError("feedback_not_open", id=feedback_id)
            await uow.outbox.add(
                f"{FEEDBACK_ANSWER_NOTIFICATION}:{feedback_id}",
                item.person_id,
                FEEDBACK_ANSWER_NOTIFICATION,
                {"feedback_id": feedback_id},
                now,
                expires_at=now + ANSWER_VALID_FOR,
            )
            await audit(
                uow,
                now,
                actor,
                "feedback_answer",
                "ok",
                target=f"feedback:{feedback_id}",
                detail={"person_id": item.person_id, "chars": len(cleaned)},
            )
            await uow.commit()
            answered = await uow.feedback.get(feedback_id)
            assert answered is not None
            return await self._view(uow, answered)

    async def close(self, actor: Actor, feedback_id: int) -> FeedbackView:
        """Close an open item without an answer (kept, and audited)."""
        async with self.uow() as uow:
            item = await uow.feedback.get(feedback_id)
            if item is None:
                raise ContestError("feedback_unknown", id=feedback_id)
            now = self.clock.now()
            if not await uow.feedback.close(feedback_id, now):
                raise ContestError("feedback_not_open", id=feedback_id)
            await audit(
                uow,
                now,
                actor,
                "feedback_close",
                "ok",
                target=f"feedback:{feedback_id}",
                detail={"person_id": item.person_id},
            )
            await uow.commit()
            closed = await uow.feedback.get(feedback_id)
            assert closed is not None
            return await self._view(uow, closed)

    async def answered(self, feedback_id: int) -> FeedbackView | None:
        """An answered item, for the notice that carries its answer (None otherwise)."""
        async with self.uow(write=False) as uow:
            item = await uow.feedback.get(feedback_id)
            if item is None or item.status != ANSWERED or not item.answer:
                return None
            return await self._view(uow, item)

    # ------------------------------------------------------------------ helpers

    async def _person(self, uow: UnitOfWork, account: Account) -> Person:
        person = await uow.persons.by_account(account)
        if person is None:
            raise ContestError("not_registered")
        return person

    async def _check_rate(self, uow: UnitOfWork, person: Person, now: datetime) -> None:
        sent = await uow.feedback.sent_since(person.id, now - RATE_WINDOW)
        if len(sent) >= PER_HOUR:
            raise ContestError("feedback_rate", limit=PER_HOUR, until=sent[-PER_HOUR] + RATE_WINDOW)

    async def _finished_attempt(
        self, uow: UnitOfWork, account: Account, attempt_id: int
    ) -> Attempt:
        attempt = await uow.attempts.owned(attempt_id, account)
        if attempt is None:
            raise ContestError("feedback_attempt_unknown")
        if not attempt.finished:
            raise ContestError("feedback_attempt_open")
        return attempt

    async def _view(self, uow: UnitOfWork, item: FeedbackItem) -> FeedbackView:
        person = await uow.persons.get(item.person_id)
        place = None
        if person is not None and (person.unit_id or person.ward_id):
            unit = await uow.units.get(person.unit_id or person.ward_id or 0)
            place = unit.name if unit else None
        number = question = None
        if item.attempt_id is not None:
            attempt = await uow.attempts.get(item.attempt_id)
            if attempt is not None:
                number = attempt.number
                if item.position is not None:
                    chosen = [i for i in attempt.items if i.position == item.position]
                    questions = await uow.questions.get_many([i.question_id for i in chosen])
                    shown = _as_shown(chosen, questions)
                    question = shown[0] if shown else None
        return FeedbackView(item, person, place, number, question)
