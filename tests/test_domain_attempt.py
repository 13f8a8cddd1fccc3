"""Service-level tests of ContestService over an in-memory unit of work.

The fake below implements the Protocols of ``contest.ports`` the way a database would:
repositories hand out copies, writes are undone unless committed, a read-only unit of
work refuses writes, and ``record_answer``, ``finish``, ``mark_warned`` and the outbox
are compare-and-set operations.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any

import pytest

from contest.clock import ManualClock
from contest.errors import Conflict, ContestError
from contest.importing import QuestionRow, UnitRow
from contest.model import (
    Account,
    Attempt,
    AttemptItem,
    AttemptResult,
    AttemptStatus,
    Channel,
    Group,
    Person,
    Position,
    Question,
    Unit,
    UnitKind,
)
from contest.ports import (
    AccountRepository,
    AttemptRepository,
    DraftRepository,
    ImportSummary,
    Notification,
    OutboxRepository,
    PersonRepository,
    QuestionRepository,
    UnitOfWork,
    UnitOfWorkFactory,
    UnitPage,
    UnitRepository,
)
from contest.registration import Draft, Step
from contest.rules import LOCAL_TZ, ContestRules, Round2Rules, RoundRules, Window
from contest.scoring import best_per_person, rank
from contest.services import (
    INLINE_RESULT_GRACE,
    RESULT_NOTIFICATION,
    WARNING_NOTIFICATION,
    AnswerOutcome,
    ContestService,
    ExamCard,
    ExamState,
)

# ================================================================ the fake database

_MISSING: Any = object()


class UniqueViolation(Exception):
    """What a database's unique constraint would raise."""


class ReadOnlyViolation(Exception):
    """A write through a unit of work opened with write=False."""


@dataclass
class OutboxRow:
    notification: Notification
    created_at: datetime
    sent_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    error: str | None = None
    not_before: datetime | None = None
    expires_at: datetime | None = None
    outcome: str | None = None
    tries: int = 0

    def claimable(self, now: datetime) -> bool:
        return (
            self.sent_at is None
            and (self.lease_until is None or self.lease_until <= now)
            and (self.not_before is None or self.not_before <= now)
        )


class Database:
    """The tables, shared by every unit of work of one test."""

    def __init__(self) -> None:
        self.units: dict[int, Unit] = {}
        self.questions: dict[int, Question] = {}
        self.withdrawn: dict[int, bool] = {}  # inactive questions (a dict, for the undo log)
        self.persons: dict[int, Person] = {}
        self.accounts: dict[Account, tuple[int, datetime]] = {}  # -> (person, last used)
        self.drafts: dict[Account, str] = {}  # -> JSON, like a JSON column
        self.attempts: dict[int, Attempt] = {}
        self.outbox: dict[int, OutboxRow] = {}
        # Distinct id ranges make a person id passed as an attempt id fail loudly.
        self.unit_ids = itertools.count(1001)
        self.question_ids = itertools.count(2001)
        self.person_ids = itertools.count(1)
        self.attempt_ids = itertools.count(501)
        self.outbox_ids = itertools.count(1)
        self.commits = 0
        self.rollbacks = 0
        self.cas_refusals: Counter[str] = Counter()
        # Set by a test to hold every caller of a compare-and-set until all have arrived.
        self.barriers: dict[str, asyncio.Barrier] = {}

    async def meet(self, operation: str) -> None:
        barrier = self.barriers.get(operation)
        if barrier is not None:
            await barrier.wait()

    def question_by_text(self, text: str) -> Question:
        [question] = [q for q in self.questions.values() if q.text == text]
        return question


async def _yield() -> None:
    """A suspension point, so concurrent use cases interleave like real I/O."""
    await asyncio.sleep(0)


class _Repo:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.db = uow.db


class FakeUnits(_Repo):
    async def get(self, unit_id: int) -> Unit | None:
        await _yield()
        return self.db.units.get(unit_id)

    async def by_code(self, code: str) -> Unit | None:
        await _yield()
        return next((u for u in self.db.units.values() if u.code == code), None)

    async def page(self, kind: UnitKind, page: int, size: int, query: str | None) -> UnitPage:
        await _yield()
        units = sorted(
            (u for u in self.db.units.values() if u.kind is kind),
            key=lambda u: u.name.casefold(),
        )
        if query:
            needle = query.casefold()
            units = [u for u in units if needle in u.name.casefold() or needle in u.code.lower()]
        pages = max(1, math.ceil(len(units) / size))
        page = min(max(page, 0), pages - 1)
        return UnitPage(kind, units[page * size : (page + 1) * size], page, pages, query)

    async def upsert(self, rows: Sequence[UnitRow]) -> ImportSummary:
        await _yield()
        by_code = {u.code: u for u in self.db.units.values()}
        created = updated = 0
        for row in rows:
            old = by_code.get(row.code)
            unit_id = old.id if old else next(self.db.unit_ids)
            self.uow.writing(self.db.units, unit_id)
            self.db.units[unit_id] = Unit(unit_id, row.code, row.name, row.kind, row.staff_count)
            created, updated = (created, updated + 1) if old else (created + 1, updated)
        return ImportSummary(created, updated)

    async def count(self) -> int:
        return len(self.db.units)


class FakeQuestions(_Repo):
    async def catalog(self, *, include_inactive: bool = False) -> list[Question]:
        await _yield()
        questions = sorted(self.db.questions.values(), key=lambda q: q.id)
        if include_inactive:
            return questions
        return [q for q in questions if q.id not in self.db.withdrawn]

    async def answer_of(self, question_id: int) -> int | None:
        await _yield()
        question = self.db.questions.get(question_id)
        return question.answer if question else None

    async def get_many(self, ids: Sequence[int]) -> dict[int, Question]:
        await _yield()
        return {i: self.db.questions[i] for i in ids if i in self.db.questions}

    async def upsert(self, rows: Sequence[QuestionRow], *, replace: bool = False) -> ImportSummary:
        await _yield()
        by_text = {q.text: q for q in self.db.questions.values()}
        created = updated = 0
        imported: set[int] = set()
        for row in rows:
            old = by_text.get(row.text)
            qid = old.id if old else next(self.db.question_ids)
            imported.add(qid)
            self.uow.writing(self.db.questions, qid)
            self.db.questions[qid] = Question(qid, row.topic, row.text, row.options, row.answer)
            created, updated = (created, updated + 1) if old else (created + 1, updated)
        withdrawn = 0
        for qid in set(self.db.questions):
            inactive = qid in self.db.withdrawn
            if qid in imported and inactive:
                self.uow.writing(self.db.withdrawn, qid)
                del self.db.withdrawn[qid]
            elif replace and qid not in imported and not inactive:
                self.uow.writing(self.db.withdrawn, qid)
                self.db.withdrawn[qid] = True
                withdrawn += 1
        return ImportSummary(created, updated, withdrawn)

    async def count(self) -> int:
        return len(self.db.questions)


class FakePersons(_Repo):
    async def set_unreachable(self, person_id: int, when: datetime | None) -> None:
        await _yield()
        self.uow.writing(self.db.persons, person_id)
        self.db.persons[person_id] = replace(self.db.persons[person_id], unreachable_at=when)

    async def by_account(self, account: Account) -> Person | None:
        await _yield()
        linked = self.db.accounts.get(account)
        return self.db.persons.get(linked[0]) if linked is not None else None

    async def by_phone(self, phone: str) -> Person | None:
        await _yield()
        return next((p for p in self.db.persons.values() if p.phone == phone), None)

    async def get(self, person_id: int) -> Person | None:
        await _yield()
        return self.db.persons.get(person_id)

    async def add(
        self,
        *,
        account: Account,
        full_name: str,
        birth_date: date,
        phone: str,
        group: Group,
        unit_id: int | None,
        position: Position | None,
        ward_id: int | None,
        consent_at: datetime,
        registered_at: datetime,
    ) -> Person:
        await _yield()
        if account in self.db.accounts:
            raise UniqueViolation("accounts")
        if any(other.phone == phone for other in self.db.persons.values()):
            raise UniqueViolation("persons")
        person_id = next(self.db.person_ids)
        self.uow.writing(self.db.persons, person_id)
        self.uow.writing(self.db.accounts, account)
        self.db.accounts[account] = (person_id, registered_at)
        person = Person(
            person_id,
            full_name,
            birth_date,
            phone,
            group,
            unit_id,
            position,
            ward_id,
            consent_at,
            registered_at,
        )
        self.db.persons[person_id] = person
        return person


class FakeAccounts(_Repo):
    async def of_person(self, person_id: int) -> list[Account]:
        await _yield()
        return [a for a, (pid, _) in self.db.accounts.items() if pid == person_id]

    async def preferred(self, person_id: int) -> Account | None:
        await _yield()
        mine = [(used, a) for a, (pid, used) in self.db.accounts.items() if pid == person_id]
        return max(mine)[1] if mine else None

    async def touch(self, account: Account, now: datetime) -> None:
        await _yield()
        linked = self.db.accounts.get(account)
        if linked is not None and linked[1] < now:
            self.uow.writing(self.db.accounts, account)
            self.db.accounts[account] = (linked[0], now)

    async def link(self, account: Account, person_id: int, now: datetime) -> None:
        await _yield()
        if account in self.db.accounts:
            raise Conflict("account already linked")
        self.uow.writing(self.db.accounts, account)
        self.db.accounts[account] = (person_id, now)


class FakeDrafts(_Repo):
    async def get(self, account: Account) -> Draft | None:
        await _yield()
        stored = self.db.drafts.get(account)
        return Draft.from_dict(json.loads(stored)) if stored is not None else None

    async def save(self, account: Account, draft: Draft, now: datetime) -> None:
        await _yield()
        self.uow.writing(self.db.drafts, account)
        self.db.drafts[account] = json.dumps(draft.to_dict())

    async def delete(self, account: Account) -> None:
        await _yield()
        self.uow.writing(self.db.drafts, account)
        self.db.drafts.pop(account, None)


class FakeAttempts(_Repo):
    def _mine(self, person_id: int, round: int) -> list[Attempt]:
        return [
            a for a in self.db.attempts.values() if a.person_id == person_id and a.round == round
        ]

    @staticmethod
    def _result(attempt: Attempt) -> AttemptResult:
        assert attempt.finished_at is not None and attempt.duration_seconds is not None
        return AttemptResult(
            attempt_id=attempt.id,
            person_id=attempt.person_id,
            round=attempt.round,
            number=attempt.number,
            correct=attempt.correct_count,
            total=attempt.total,
            duration_seconds=attempt.duration_seconds,
            finished_at=attempt.finished_at,
            status=attempt.status,
        )

    async def create(
        self,
        *,
        person_id: int,
        round: int,
        number: int,
        started_at: datetime,
        deadline_at: datetime,
        items: Sequence[AttemptItem],
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> Attempt:
        await self.db.meet("create")
        if any(a.number == number for a in self._mine(person_id, round)):
            raise Conflict("attempts (person_id, round, number)")  # as storage translates it
        attempt_id = next(self.db.attempt_ids)
        self.uow.writing(self.db.attempts, attempt_id)
        attempt = Attempt(
            id=attempt_id,
            person_id=person_id,
            round=round,
            number=number,
            started_at=started_at,
            deadline_at=deadline_at,
            chat_id=chat_id,
            message_id=message_id,
            items=copy.deepcopy(list(items)),
        )
        self.db.attempts[attempt_id] = attempt
        return copy.deepcopy(attempt)

    async def get(self, attempt_id: int, *, lock: bool = False) -> Attempt | None:
        await _yield()
        attempt = self.db.attempts.get(attempt_id)
        return copy.deepcopy(attempt) if attempt is not None else None

    async def best_results(self, round: int) -> list[AttemptResult]:
        return list(best_per_person(await self.results(round)).values())

    async def owned(
        self, attempt_id: int, account: Account, *, lock: bool = False
    ) -> Attempt | None:
        attempt = await self.get(attempt_id, lock=lock)
        if attempt is None:
            return None
        linked = self.db.accounts.get(account)
        return attempt if linked is not None and linked[0] == attempt.person_id else None

    async def in_progress(self, person_id: int, round: int) -> Attempt | None:
        await _yield()
        for attempt in self._mine(person_id, round):
            if attempt.status is AttemptStatus.IN_PROGRESS:
                return copy.deepcopy(attempt)
        return None

    async def count_for(self, person_id: int, round: int) -> int:
        await _yield()
        return len(self._mine(person_id, round))

    async def results_for(self, person_id: int, round: int) -> list[AttemptResult]:
        await _yield()
        return [self._result(a) for a in self._mine(person_id, round) if a.finished]

    async def results(self, round: int) -> list[AttemptResult]:
        await _yield()
        return [
            self._result(a) for a in self.db.attempts.values() if a.round == round and a.finished
        ]

    async def record_answer(
        self, attempt_id: int, position: int, choice: int, correct: bool, now: datetime
    ) -> bool:
        await self.db.meet("record_answer")
        attempt = self.db.attempts.get(attempt_id)
        if attempt is None or attempt.items[position].choice is not None:
            self.db.cas_refusals["record_answer"] += 1
            return False
        self.uow.writing(self.db.attempts, attempt_id)
        item = attempt.items[position]
        item.choice, item.correct, item.answered_at = choice, correct, now
        return True

    async def finish(
        self,
        attempt_id: int,
        status: AttemptStatus,
        finished_at: datetime,
        correct: int,
        duration_seconds: float,
    ) -> bool:
        await self.db.meet("finish")
        attempt = self.db.attempts.get(attempt_id)
        if attempt is None or attempt.status is not AttemptStatus.IN_PROGRESS:
            self.db.cas_refusals["finish"] += 1
            return False
        self.uow.writing(self.db.attempts, attempt_id)
        attempt.status, attempt.finished_at = status, finished_at
        attempt.correct_count, attempt.duration_seconds = correct, duration_seconds
        return True

    async def set_message(self, attempt_id: int, chat_id: int, message_id: int) -> None:
        await _yield()
        attempt = self.db.attempts.get(attempt_id)
        if attempt is not None:
            self.uow.writing(self.db.attempts, attempt_id)
            attempt.chat_id, attempt.message_id = chat_id, message_id

    async def expired_ids(self, now: datetime, limit: int) -> list[int]:
        await _yield()
        due = [
            a
            for a in self.db.attempts.values()
            if a.status is AttemptStatus.IN_PROGRESS and a.deadline_at < now
        ]
        return [a.id for a in sorted(due, key=lambda a: (a.deadline_at, a.id))[:limit]]

    async def warn_candidates(self, now: datetime, within_seconds: float, level: int) -> list[int]:
        await _yield()
        return [
            a.id
            for a in self.db.attempts.values()
            if a.status is AttemptStatus.IN_PROGRESS
            and a.warned <= level
            and now <= a.deadline_at <= now + timedelta(seconds=within_seconds)
        ]

    async def mark_warned(self, attempt_id: int, level: int) -> bool:
        await _yield()
        attempt = self.db.attempts.get(attempt_id)
        if attempt is None or attempt.warned >= level:
            self.db.cas_refusals["mark_warned"] += 1
            return False
        self.uow.writing(self.db.attempts, attempt_id)
        attempt.warned = level
        return True

    async def open_deadlines(self) -> list[tuple[int, datetime]]:
        await _yield()
        return sorted(
            (a.id, a.deadline_at)
            for a in self.db.attempts.values()
            if a.status is AttemptStatus.IN_PROGRESS
        )


class FakeOutbox(_Repo):
    async def add(
        self,
        key: str,
        person_id: int | None,
        kind: str,
        payload: dict[str, Any],
        now: datetime,
        *,
        not_before: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> bool:
        await _yield()
        if any(row.notification.key == key for row in self.db.outbox.values()):
            return False
        row_id = next(self.db.outbox_ids)
        self.uow.writing(self.db.outbox, row_id)
        notification = Notification(row_id, key, person_id, kind, copy.deepcopy(payload))
        self.db.outbox[row_id] = OutboxRow(
            notification, now, not_before=not_before, expires_at=expires_at
        )
        return True

    async def claim(
        self,
        now: datetime,
        lease_seconds: float,
        limit: int,
        owner: str,
        kinds: Sequence[str] | None = None,
    ) -> list[Notification]:
        await _yield()
        claimed: list[Notification] = []
        for row_id, row in sorted(self.db.outbox.items()):
            if len(claimed) >= limit:
                break
            if kinds is not None and row.notification.kind not in kinds:
                continue
            if row.claimable(now):
                self.uow.writing(self.db.outbox, row_id)
                row.lease_owner = owner
                row.lease_until = now + timedelta(seconds=lease_seconds)
                claimed.append(row.notification)
        return claimed

    async def candidates(
        self,
        now: datetime,
        limit: int,
        *,
        kinds: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        first: Sequence[str] | None = None,
        after: int | None = None,
        lapsed: bool = False,
        channels: Collection[Channel] | None = None,
    ) -> list[Notification]:
        await _yield()
        found: list[tuple[int, int, Notification]] = []
        reachable = {
            person_id
            for account, (person_id, _) in self.db.accounts.items()
            if channels is None or account.channel in channels
        }
        for row_id, row in self.db.outbox.items():
            if not row.claimable(now) or (row.lease_until is not None) != lapsed:
                continue
            kind = row.notification.kind
            if kinds is not None and kind not in kinds:
                continue
            if exclude and kind in exclude:
                continue
            if after is not None and row_id <= after:
                continue
            person_id = row.notification.person_id
            if channels is not None and person_id is not None and person_id not in reachable:
                continue
            order = list(first).index(kind) if first and kind in first else 99
            found.append((order, row_id, replace(row.notification, tries=row.tries + 1)))
        return [note for _, _, note in sorted(found, key=lambda f: f[:2])[: max(limit, 0)]]

    async def recipients(self, person_ids: Sequence[int]) -> dict[int, Account]:
        await _yield()
        best: dict[int, tuple[datetime, Account]] = {}
        for account, (person_id, used) in self.db.accounts.items():
            if person_id in person_ids and (person_id not in best or used > best[person_id][0]):
                best[person_id] = (used, account)
        return {person_id: account for person_id, (_, account) in best.items()}

    async def take(
        self, ids: Sequence[int], now: datetime, lease_seconds: float, owner: str
    ) -> dict[int, int]:
        await _yield()
        taken: dict[int, int] = {}
        for row_id in dict.fromkeys(ids):
            row = self.db.outbox.get(row_id)
            if row is None or not row.claimable(now):
                continue
            self.uow.writing(self.db.outbox, row_id)
            row.lease_owner = owner
            row.lease_until = now + timedelta(seconds=lease_seconds)
            row.tries += 1
            taken[row_id] = row.tries
        return taken

    async def release(self, ids: Sequence[int]) -> None:
        await _yield()
        for row_id in ids:
            row = self.db.outbox.get(row_id)
            if row is not None and row.sent_at is None:
                self.uow.writing(self.db.outbox, row_id)
                row.lease_owner = row.lease_until = None
                row.tries -= 1

    async def mark_sent_many(self, notification_ids: Sequence[int], now: datetime) -> None:
        for notification_id in notification_ids:
            await self.mark_sent(notification_id, now)

    async def expire(self, now: datetime) -> int:
        await _yield()
        ended = 0
        for row_id, row in self.db.outbox.items():
            if row.claimable(now) and row.expires_at is not None and row.expires_at < now:
                self.uow.writing(self.db.outbox, row_id)
                row.sent_at, row.outcome = now, "expired"
                ended += 1
        return ended

    async def mark_sent(self, notification_id: int, now: datetime) -> None:
        await _yield()
        self.uow.writing(self.db.outbox, notification_id)
        row = self.db.outbox[notification_id]
        row.sent_at, row.outcome = now, "sent"

    async def end(
        self, notification_id: int, now: datetime, outcome: str, error: str | None = None
    ) -> None:
        await _yield()
        self.uow.writing(self.db.outbox, notification_id)
        row = self.db.outbox[notification_id]
        row.sent_at, row.outcome, row.error = now, outcome, error

    async def retry_at(self, notification_id: int, error: str, when: datetime) -> None:
        await _yield()
        self.uow.writing(self.db.outbox, notification_id)
        row = self.db.outbox[notification_id]
        row.lease_owner = row.lease_until = None
        row.error, row.not_before = error, when

    async def end_pending(self, key: str, now: datetime, outcome: str) -> bool:
        await _yield()
        for row_id, row in self.db.outbox.items():
            if row.notification.key == key and row.sent_at is None:
                if row.lease_until is not None and row.lease_until > now:
                    return False
                self.uow.writing(self.db.outbox, row_id)
                row.sent_at, row.outcome = now, "inline"
                return True
        return False


class FakeUnitOfWork:
    def __init__(self, db: Database, write: bool) -> None:
        self.db = db
        self.write = write
        self.units: UnitRepository = FakeUnits(self)
        self.questions: QuestionRepository = FakeQuestions(self)
        self.persons: PersonRepository = FakePersons(self)
        self.accounts: AccountRepository = FakeAccounts(self)
        self.drafts: DraftRepository = FakeDrafts(self)
        self.attempts: AttemptRepository = FakeAttempts(self)
        self.outbox: OutboxRepository = FakeOutbox(self)
        self._entered = False
        self._undo: list[tuple[dict[Any, Any], Any, Any]] = []

    def writing(self, table: dict[Any, Any], key: Any) -> None:
        """Remember a row's value before a write, so a rollback can restore it."""
        if not self._entered:
            raise AssertionError("unit of work used outside 'async with'")
        if not self.write:
            raise ReadOnlyViolation(f"write through a read-only unit of work ({key!r})")
        old = table.get(key, _MISSING)
        self._undo.append((table, key, old if old is _MISSING else copy.deepcopy(old)))

    async def __aenter__(self) -> FakeUnitOfWork:
        assert not self._entered, "a unit of work is entered once"
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._undo:
            for table, key, old in reversed(self._undo):
                if old is _MISSING:
                    table.pop(key, None)
                else:
                    table[key] = old
            self._undo.clear()
            self.db.rollbacks += 1
        self._entered = False

    async def commit(self) -> None:
        if not self._entered:
            raise AssertionError("commit outside 'async with'")
        self._undo.clear()
        self.db.commits += 1


class FakeUnitOfWorkFactory:
    def __init__(self, db: Database) -> None:
        self.db = db

    def __call__(self, *, write: bool = True) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.db, write)


class RecordingTimer:
    def __init__(self) -> None:
        self.armed: dict[int, datetime] = {}
        self.disarmed: list[int] = []

    def arm(self, attempt_id: int, deadline_at: datetime) -> None:
        self.armed[attempt_id] = deadline_at

    def disarm(self, attempt_id: int) -> None:
        self.disarmed.append(attempt_id)


def _protocols_are_met(db: Database) -> None:
    """Never called: makes a type checker hold the fakes to the Protocols."""
    factory: UnitOfWorkFactory = FakeUnitOfWorkFactory(db)
    uow: UnitOfWork = factory()
    del uow


# ================================================================ fixtures and helpers

OPENS = datetime(2024, 8, 1, 0, 0, tzinfo=LOCAL_TZ)
CLOSES = datetime(2024, 8, 16, 0, 0, tzinfo=LOCAL_TZ)
NOW = datetime(2024, 8, 1, 9, 0, tzinfo=LOCAL_TZ)
TOPICS = ("topic-a", "topic-b", "topic-c", "topic-d", "topic-e")
MINUTES = 20
QUESTIONS = 20

ALICE, BOB, CAROL = (Account.telegram(n) for n in (111, 222, 333))


def make_rules() -> ContestRules:
    return ContestRules(
        campaign=Window(datetime(2024, 7, 15, tzinfo=LOCAL_TZ), CLOSES),
        round1=RoundRules(1, Window(OPENS, CLOSES), questions=QUESTIONS, minutes=MINUTES),
        round2=Round2Rules(
            RoundRules(
                2,
                Window(
                    datetime(2024, 9, 5, 8, tzinfo=LOCAL_TZ),
                    datetime(2024, 9, 5, 12, tzinfo=LOCAL_TZ),
                ),
                attempts=1,
            )
        ),
    )


@dataclass
class World:
    db: Database
    clock: ManualClock
    service: ContestService
    timer: RecordingTimer
    department: Unit
    other_department: Unit
    ward: Unit


@pytest.fixture
def world() -> World:
    db = Database()
    for n in range(60):
        qid = next(db.question_ids)
        db.questions[qid] = Question(
            id=qid,
            topic=TOPICS[n % 5],
            text=f"Question {n}?",
            options=(f"q{n} option one", f"q{n} option two", f"q{n} option three"),
            answer=n % 3,
        )
    units = [
        ("PNV", "Phòng Nội vụ", UnitKind.DEPARTMENT, 12),
        ("PTC", "Phòng Tài chính - Kế hoạch", UnitKind.DEPARTMENT, 9),
        ("P-LT", "UBND phường Láng Thượng", UnitKind.WARD, 25),
        ("THCS-DD", "Trường THCS Đống Đa", UnitKind.EDUCATION, 40),
    ]
    for code, name, kind, staff in units:
        uid = next(db.unit_ids)
        db.units[uid] = Unit(uid, code, name, kind, staff)
    by_code = {u.code: u for u in db.units.values()}
    clock = ManualClock(NOW)
    timer = RecordingTimer()
    service = ContestService(
        FakeUnitOfWorkFactory(db), clock, make_rules(), rng=random.Random(2024), timer=timer
    )
    return World(db, clock, service, timer, by_code["PNV"], by_code["PTC"], by_code["P-LT"])


def seed_person(w: World, account: Account, phone: str | None = None) -> Person:
    """A registered civil servant, written straight into the fake database."""
    person_id = next(w.db.person_ids)
    w.db.accounts[account] = (person_id, w.clock.now())
    person = Person(
        id=person_id,
        full_name=f"Person {account.user_id}",
        birth_date=date(1990, 1, 1),
        phone=phone or f"+8490{int(account.user_id):07d}",
        group=Group.CIVIL_SERVANT,
        unit_id=w.department.id,
        position=Position.STAFF,
        ward_id=None,
        consent_at=w.clock.now(),
        registered_at=w.clock.now(),
    )
    w.db.persons[person_id] = person
    return person


async def fill_common_steps(
    w: World, telegram_id: Account, *, born: str = "15/03/1990", phone: str = "0912345678"
) -> None:
    s = w.service
    view = await s.registration.begin_registration(telegram_id)
    assert view.draft.step is Step.CONSENT
    view = await s.registration.register_input(telegram_id, Step.CONSENT, True)
    assert view.draft.step is Step.NAME
    view = await s.registration.register_input(telegram_id, Step.NAME, "  Nguyễn   Văn <An> ")
    assert view.draft.step is Step.BIRTH_DATE
    assert view.draft.full_name == "Nguyễn Văn <An>"
    view = await s.registration.register_input(telegram_id, Step.BIRTH_DATE, born)
    assert view.draft.step is Step.PHONE
    view = await s.registration.register_input(
        telegram_id, Step.PHONE, (phone, telegram_id.user_id)
    )
    assert view.draft.step is Step.GROUP


async def register_citizen(w: World, telegram_id: Account, **kwargs: str) -> Person:
    await fill_common_steps(w, telegram_id, **kwargs)
    await w.service.registration.register_input(telegram_id, Step.GROUP, Group.CITIZEN)
    await w.service.registration.register_input(telegram_id, Step.WARD, w.ward.id)
    return await w.service.registration.confirm_registration(telegram_id)


def correct_label(w: World, card: ExamCard) -> int:
    question = w.db.question_by_text(card.text)
    return card.options.index(question.options[question.answer])


async def answer_card(
    w: World, telegram_id: Account, card: ExamCard, *, right: bool
) -> AnswerOutcome:
    label = correct_label(w, card)
    choice = label if right else (label + 1) % 3
    return await w.service.exams.answer(telegram_id, card.attempt_id, card.position, choice)


async def take_attempt(
    w: World, telegram_id: Account, correct: int, seconds_per_answer: float = 30.0
) -> AnswerOutcome:
    """Start an attempt and answer all of it, the first ``correct`` questions right."""
    card = await w.service.exams.start_attempt(telegram_id)
    outcome = AnswerOutcome()
    for n in range(QUESTIONS):
        w.clock.advance(seconds=seconds_per_answer)
        outcome = await answer_card(w, telegram_id, card, right=n < correct)
        if outcome.next_card is not None:
            card = outcome.next_card
    assert outcome.summary is not None
    return outcome


async def raises_code(code: str, awaitable: Any) -> ContestError:
    with pytest.raises(ContestError) as caught:
        await awaitable
    assert caught.value.code == code, caught.value
    return caught.value


# ================================================================ registration


async def test_civil_servant_registers_through_every_step(world: World) -> None:
    w, s = world, world.service
    await fill_common_steps(w, ALICE)
    view = await s.registration.register_input(ALICE, Step.GROUP, Group.CIVIL_SERVANT)
    assert view.draft.step is Step.UNIT_KIND
    view = await s.registration.register_input(ALICE, Step.UNIT_KIND, UnitKind.DEPARTMENT)
    assert view.draft.step is Step.UNIT
    assert view.page is not None
    assert {u.id for u in view.page.units} == {w.department.id, w.other_department.id}
    view = await s.registration.register_input(ALICE, Step.UNIT, w.department.id)
    assert view.draft.step is Step.POSITION
    view = await s.registration.register_input(ALICE, Step.POSITION, Position.LEADER)
    assert view.draft.step is Step.CONFIRM
    assert view.units == {"unit": w.department, "ward": None}

    person = await s.registration.confirm_registration(ALICE)

    assert w.db.accounts[ALICE][0] == person.id
    assert person.full_name == "Nguyễn Văn <An>"
    assert person.birth_date == date(1990, 3, 15)
    assert person.phone == "+84912345678"
    assert person.group is Group.CIVIL_SERVANT
    assert (person.unit_id, person.position, person.ward_id) == (
        w.department.id,
        Position.LEADER,
        None,
    )
    assert person.registered_at == w.clock.now()
    assert w.db.drafts == {}
    assert list(w.db.persons.values()) == [person]
    profile = await s.registration.profile(ALICE)
    assert profile is not None
    assert profile.unit == w.department
    assert profile.ward is None
    await raises_code("already_registered", s.registration.begin_registration(ALICE))


async def test_citizen_registers_with_a_ward(world: World) -> None:
    w, s = world, world.service
    await fill_common_steps(w, BOB, phone="+84 987 654 321")
    view = await s.registration.register_input(BOB, Step.GROUP, Group.CITIZEN)
    assert view.draft.step is Step.WARD
    assert view.page is not None
    assert [u.id for u in view.page.units] == [w.ward.id]
    await raises_code(
        "unit_unknown", s.registration.register_input(BOB, Step.WARD, w.department.id)
    )
    view = await s.registration.register_input(BOB, Step.WARD, w.ward.id)
    assert view.draft.step is Step.CONFIRM
    assert view.units == {"unit": None, "ward": w.ward}

    person = await s.registration.confirm_registration(BOB)

    assert person.group is Group.CITIZEN
    assert (person.unit_id, person.position, person.ward_id) == (None, None, w.ward.id)
    assert person.phone == "+84987654321"


async def test_registration_survives_between_calls_and_resumes(world: World) -> None:
    s = world.service
    await s.registration.begin_registration(ALICE)
    await s.registration.register_input(ALICE, Step.CONSENT, True)
    again = await s.registration.begin_registration(ALICE)
    assert again.draft.step is Step.NAME
    assert again.draft.consent is True
    view = await s.registration.draft_view(ALICE)
    assert view is not None and view.draft.step is Step.NAME
    assert await s.registration.draft_view(BOB) is None


async def test_an_answer_for_another_step_is_refused(world: World) -> None:
    s = world.service
    await s.registration.begin_registration(ALICE)
    error = await raises_code(
        "wrong_step", s.registration.register_input(ALICE, Step.NAME, "An Bình")
    )
    assert error.params == {"expected": "consent"}
    await raises_code("consent_required", s.registration.register_input(ALICE, Step.CONSENT, False))
    await raises_code("no_registration", s.registration.register_input(BOB, Step.CONSENT, True))


async def test_invalid_input_leaves_the_draft_unchanged(world: World) -> None:
    w, s = world, world.service
    await s.registration.begin_registration(ALICE)
    await s.registration.register_input(ALICE, Step.CONSENT, True)
    stored = dict(w.db.drafts)
    await raises_code("name_invalid", s.registration.register_input(ALICE, Step.NAME, "1"))
    await s.registration.register_input(ALICE, Step.NAME, "An Bình")
    stored = dict(w.db.drafts)
    await raises_code(
        "birth_date_impossible", s.registration.register_input(ALICE, Step.BIRTH_DATE, "31/02/1990")
    )
    await raises_code(
        "birth_date_future", s.registration.register_input(ALICE, Step.BIRTH_DATE, "02/08/2024")
    )
    assert w.db.drafts == stored


async def test_a_citizen_under_18_is_refused_at_the_group_step(world: World) -> None:
    w, s = world, world.service
    await fill_common_steps(w, CAROL, born="02/08/2006")  # eighteen tomorrow
    before = dict(w.db.drafts)

    error = await raises_code(
        "citizen_under_age", s.registration.register_input(CAROL, Step.GROUP, Group.CITIZEN)
    )

    assert error.params == {"min_age": 18}
    assert w.db.drafts == before
    view = await s.registration.draft_view(CAROL)
    assert view is not None
    assert view.draft.step is Step.GROUP
    assert view.draft.group is None


async def test_a_citizen_turning_18_today_in_hanoi_is_accepted(world: World) -> None:
    w = world
    # 00:30 on 1 August in Hanoi is still 31 July in UTC.
    w.clock.set(datetime(2024, 8, 1, 0, 30, tzinfo=LOCAL_TZ))
    assert w.clock.now().date() == date(2024, 7, 31)
    person = await register_citizen(w, CAROL, born="01/08/2006")
    assert person.birth_date == date(2006, 8, 1)


async def test_a_civil_servant_has_no_age_check(world: World) -> None:
    w, s = world, world.service
    await fill_common_steps(w, CAROL, born="02/08/2006")
    view = await s.registration.register_input(CAROL, Step.GROUP, Group.CIVIL_SERVANT)
    assert view.draft.step is Step.UNIT_KIND


async def test_a_contact_that_is_not_ones_own_is_refused(world: World) -> None:
    w, s = world, world.service
    await s.registration.begin_registration(ALICE)
    await s.registration.register_input(ALICE, Step.CONSENT, True)
    await s.registration.register_input(ALICE, Step.NAME, "An Bình")
    await s.registration.register_input(ALICE, Step.BIRTH_DATE, "1/1/1990")
    before = dict(w.db.drafts)
    await raises_code(
        "contact_not_own",
        s.registration.register_input(ALICE, Step.PHONE, ("0912345678", BOB.user_id)),
    )
    await raises_code(
        "contact_not_own", s.registration.register_input(ALICE, Step.PHONE, ("0912345678", None))
    )
    assert w.db.drafts == before


async def test_a_phone_already_registered_is_refused(world: World) -> None:
    w, s = world, world.service
    await register_citizen(w, ALICE, phone="0912345678")
    await s.registration.begin_registration(BOB)
    await s.registration.register_input(BOB, Step.CONSENT, True)
    await s.registration.register_input(BOB, Step.NAME, "Lê Bình")
    await s.registration.register_input(BOB, Step.BIRTH_DATE, "2/2/1992")
    await raises_code(
        "phone_taken", s.registration.register_input(BOB, Step.PHONE, ("84912345678", BOB.user_id))
    )
    await raises_code(
        "phone_taken",
        s.registration.register_input(BOB, Step.PHONE, ("+84 912 345 678", BOB.user_id)),
    )
    view = await s.registration.register_input(BOB, Step.PHONE, ("0987000111", BOB.user_id))
    assert view.draft.phone == "+84987000111"


async def test_a_phone_taken_between_entry_and_confirmation_is_refused(world: World) -> None:
    w, s = world, world.service
    await fill_common_steps(w, BOB, phone="0912345678")
    await s.registration.register_input(BOB, Step.GROUP, Group.CITIZEN)
    await s.registration.register_input(BOB, Step.WARD, w.ward.id)
    await register_citizen(w, ALICE, phone="0912345678")
    await raises_code("phone_taken", s.registration.confirm_registration(BOB))
    assert len(w.db.persons) == 1
    assert BOB in w.db.drafts


async def test_editing_a_field_from_the_summary_returns_to_confirm(world: World) -> None:
    w, s = world, world.service
    await fill_common_steps(w, ALICE)
    await s.registration.register_input(ALICE, Step.GROUP, Group.CITIZEN)
    await s.registration.register_input(ALICE, Step.WARD, w.ward.id)

    view = await s.registration.edit_field(ALICE, "name")
    assert view.draft.step is Step.NAME
    assert view.draft.editing is True
    view = await s.registration.register_input(ALICE, Step.NAME, "Trần Thị Bình")
    assert view.draft.step is Step.CONFIRM
    assert view.draft.editing is False

    view = await s.registration.edit_field(ALICE, "phone")
    assert view.draft.step is Step.PHONE
    view = await s.registration.register_input(ALICE, Step.PHONE, ("0987654321", ALICE.user_id))
    assert view.draft.step is Step.CONFIRM

    view = await s.registration.edit_field(ALICE, "birth_date")
    await raises_code(
        "citizen_under_age", s.registration.register_input(ALICE, Step.BIRTH_DATE, "1/1/2010")
    )
    view = await s.registration.register_input(ALICE, Step.BIRTH_DATE, "1/1/1980")
    assert view.draft.step is Step.CONFIRM

    person = await s.registration.confirm_registration(ALICE)
    assert (person.full_name, person.phone, person.birth_date) == (
        "Trần Thị Bình",
        "+84987654321",
        date(1980, 1, 1),
    )


async def test_editing_the_group_asks_for_what_the_new_group_needs(world: World) -> None:
    w, s = world, world.service
    await fill_common_steps(w, ALICE)
    await s.registration.register_input(ALICE, Step.GROUP, Group.CITIZEN)
    await s.registration.register_input(ALICE, Step.WARD, w.ward.id)
    await raises_code("wrong_step", s.registration.edit_field(ALICE, "position"))
    await raises_code("wrong_step", s.registration.edit_field(ALICE, "unit"))
    await raises_code("wrong_step", s.registration.edit_field(ALICE, "nonsense"))

    await s.registration.edit_field(ALICE, "group")
    view = await s.registration.register_input(ALICE, Step.GROUP, Group.CIVIL_SERVANT)
    assert view.draft.step is Step.UNIT_KIND
    view = await s.registration.register_input(ALICE, Step.UNIT_KIND, UnitKind.DEPARTMENT)
    assert view.draft.step is Step.UNIT
    await raises_code("unit_unknown", s.registration.register_input(ALICE, Step.UNIT, w.ward.id))
    view = await s.registration.register_input(ALICE, Step.UNIT, w.other_department.id)
    assert view.draft.step is Step.POSITION
    view = await s.registration.register_input(ALICE, Step.POSITION, Position.STAFF)
    assert view.draft.step is Step.CONFIRM

    await s.registration.edit_field(ALICE, "unit")
    await s.registration.register_input(ALICE, Step.UNIT_KIND, UnitKind.DEPARTMENT)
    view = await s.registration.register_input(ALICE, Step.UNIT, w.department.id)
    assert view.draft.step is Step.CONFIRM

    person = await s.registration.confirm_registration(ALICE)
    assert person.group is Group.CIVIL_SERVANT
    assert (person.unit_id, person.position, person.ward_id) == (
        w.department.id,
        Position.STAFF,
        None,
    )


async def test_edit_is_only_possible_from_the_summary(world: World) -> None:
    s = world.service
    await s.registration.begin_registration(ALICE)
    await raises_code("wrong_step", s.registration.edit_field(ALICE, "name"))
    await raises_code("wrong_step", s.registration.confirm_registration(ALICE))


# ================================================================ starting an attempt


async def test_start_gives_a_card_of_twenty_from_the_bank(world: World) -> None:
    w = world
    alice = seed_person(w, ALICE)

    card = await w.service.exams.start_attempt(ALICE)

    assert (card.position, card.total, card.attempt_number) == (0, QUESTIONS, 1)
    assert card.deadline_at == NOW + timedelta(minutes=MINUTES)
    assert card.time_left_seconds == MINUTES * 60
    [attempt] = w.db.attempts.values()
    assert attempt.id == card.attempt_id
    assert attempt.person_id == alice.id
    assert attempt.status is AttemptStatus.IN_PROGRESS
    ids = [item.question_id for item in attempt.items]
    assert len(set(ids)) == QUESTIONS
    assert set(ids) <= set(w.db.questions)
    assert [item.position for item in attempt.items] == list(range(QUESTIONS))
    assert Counter(w.db.questions[i].topic for i in ids) == dict.fromkeys(TOPICS, 4)
    assert all(sorted(item.order) == [0, 1, 2] for item in attempt.items)
    first = w.db.questions[attempt.items[0].question_id]
    assert (card.text, card.topic) == (first.text, first.topic)
    assert card.options == tuple(first.options[i] for i in attempt.items[0].order)
    assert w.timer.armed == {card.attempt_id: card.deadline_at}
    assert await w.service.exams.open_deadlines() == [(card.attempt_id, card.deadline_at)]


async def test_a_second_start_returns_the_open_attempt(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    card = await w.service.exams.start_attempt(ALICE)
    await answer_card(w, ALICE, card, right=True)
    w.clock.advance(minutes=3)

    again = await w.service.exams.start_attempt(ALICE)

    assert again.attempt_id == card.attempt_id
    assert again.position == 1
    assert again.time_left_seconds == (MINUTES - 3) * 60
    assert len(w.db.attempts) == 1
    status = await w.service.exams.exam_status(ALICE)
    assert status.state is ExamState.IN_PROGRESS
    assert status.card == again


async def test_start_needs_a_registration(world: World) -> None:
    await raises_code("not_registered", world.service.exams.start_attempt(ALICE))
    status = await world.service.exams.exam_status(ALICE)
    assert status.state is ExamState.NOT_REGISTERED


async def test_start_with_too_small_a_bank_is_refused_and_writes_nothing(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    for qid in list(w.db.questions)[QUESTIONS - 1 :]:
        del w.db.questions[qid]
    await raises_code("bank_too_small", w.service.exams.start_attempt(ALICE))
    assert w.db.attempts == {}


@pytest.mark.parametrize(
    ("when", "code", "state"),
    [
        (OPENS - timedelta(seconds=1), "round_not_open", ExamState.NOT_OPEN),
        (datetime(2024, 7, 20, tzinfo=LOCAL_TZ), "round_not_open", ExamState.NOT_OPEN),
        (CLOSES, "round_closed", ExamState.CLOSED),
        (CLOSES + timedelta(days=3), "round_closed", ExamState.CLOSED),
    ],
)
async def test_start_outside_the_window_is_refused(
    world: World, when: datetime, code: str, state: ExamState
) -> None:
    w = world
    seed_person(w, ALICE)
    w.clock.set(when)
    await raises_code(code, w.service.exams.start_attempt(ALICE))
    assert w.db.attempts == {}
    assert (await w.service.exams.exam_status(ALICE)).state is state


async def test_start_at_the_opening_instant_is_allowed(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    w.clock.set(OPENS)
    assert (await w.service.exams.exam_status(ALICE)).state is ExamState.CAN_START
    card = await w.service.exams.start_attempt(ALICE)
    assert card.position == 0


# ================================================================ answering


async def test_answering_all_twenty_gives_a_summary_with_the_right_count(world: World) -> None:
    w = world
    alice = seed_person(w, ALICE)
    card = await w.service.exams.start_attempt(ALICE)
    attempt_id = card.attempt_id
    pattern = [n % 3 != 0 for n in range(QUESTIONS)]  # 13 right, 7 wrong
    outcome = AnswerOutcome()

    for n, right in enumerate(pattern):
        assert card.position == n
        stored = w.db.attempts[attempt_id].items[n]
        question = w.db.questions[stored.question_id]
        assert question.text == card.text
        label = correct_label(w, card)
        assert label == stored.order.index(question.answer)
        choice = label if right else (label + 2) % 3
        w.clock.advance(seconds=20)
        outcome = await w.service.exams.answer(ALICE, attempt_id, n, choice)
        assert outcome.expired is False
        item = w.db.attempts[attempt_id].items[n]
        assert (item.choice, item.correct, item.answered_at) == (choice, right, w.clock.now())
        if n < QUESTIONS - 1:
            assert outcome.summary is None
            assert outcome.next_card is not None
            card = outcome.next_card
        else:
            assert outcome.next_card is None

    summary = outcome.summary
    assert summary is not None
    assert summary.result.correct == sum(pattern) == 13
    assert summary.result.total == QUESTIONS
    assert summary.result.status is AttemptStatus.SUBMITTED
    assert summary.result.duration_seconds == QUESTIONS * 20
    assert summary.result.finished_at == w.clock.now()
    assert summary.best == summary.result
    assert (summary.attempts_used, summary.attempts_allowed, summary.attempts_left) == (1, 2, 1)
    assert summary.account == ALICE
    stored_attempt = w.db.attempts[attempt_id]
    assert stored_attempt.status is AttemptStatus.SUBMITTED
    assert stored_attempt.correct_count == 13
    assert w.timer.disarmed == [attempt_id]
    # The summary is the reply itself; the result also waits in the outbox, offered only
    # after a grace, in case that reply never reaches the person (a crash after the commit).
    [row] = w.db.outbox.values()
    assert row.notification.key == f"attempt_result:{attempt_id}"
    assert row.not_before == w.clock.now() + INLINE_RESULT_GRACE
    assert await w.service.outbox.claim("sender") == []
    assert await w.service.exams.result_shown(attempt_id)  # the reply showed it: nothing to send
    assert row.outcome == "inline"
    w.clock.advance(INLINE_RESULT_GRACE)
    assert await w.service.outbox.claim("sender") == []
    results = await w.service.results.person_results(ALICE)
    assert results.best == summary.result
    assert results.in_progress is False
    assert [r.person_id for r in results.results] == [alice.id]
    status = await w.service.exams.exam_status(ALICE)
    assert (status.state, status.attempts_used, status.attempts_left) == (ExamState.CAN_START, 1, 1)
    await raises_code("attempt_finished", w.service.exams.answer(ALICE, attempt_id, 0, 0))
    await raises_code("attempt_finished", w.service.exams.current_card(ALICE, attempt_id))


async def test_a_stale_position_is_refused(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    card = await w.service.exams.start_attempt(ALICE)
    await raises_code("stale_question", w.service.exams.answer(ALICE, card.attempt_id, 1, 0))
    await raises_code("stale_question", w.service.exams.answer(ALICE, card.attempt_id, -1, 0))
    await raises_code("stale_question", w.service.exams.answer(ALICE, card.attempt_id, 0, 3))
    await raises_code("stale_question", w.service.exams.answer(ALICE, card.attempt_id, 0, -1))
    assert all(item.choice is None for item in w.db.attempts[card.attempt_id].items)


async def test_a_double_answer_is_refused_and_the_first_one_stands(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    card = await w.service.exams.start_attempt(ALICE)
    right = correct_label(w, card)
    wrong = (right + 1) % 3
    outcome = await w.service.exams.answer(ALICE, card.attempt_id, 0, wrong)
    assert outcome.next_card is not None and outcome.next_card.position == 1

    await raises_code("stale_question", w.service.exams.answer(ALICE, card.attempt_id, 0, right))

    item = w.db.attempts[card.attempt_id].items[0]
    assert (item.choice, item.correct) == (wrong, False)
    assert (await w.service.exams.current_card(ALICE, card.attempt_id)).position == 1


async def test_two_simultaneous_presses_record_one_answer(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    card = await w.service.exams.start_attempt(ALICE)
    right = correct_label(w, card)
    choices = [right, (right + 1) % 3]
    w.db.barriers["record_answer"] = asyncio.Barrier(2)  # both presses pass every check first

    async with asyncio.timeout(5):
        outcomes = await asyncio.gather(
            *(w.service.exams.answer(ALICE, card.attempt_id, 0, c) for c in choices),
            return_exceptions=True,
        )

    won = [n for n, o in enumerate(outcomes) if isinstance(o, AnswerOutcome)]
    lost = [o for o in outcomes if isinstance(o, ContestError)]
    assert len(won) == 1
    assert [e.code for e in lost] == ["stale_question"]
    assert w.db.cas_refusals["record_answer"] == 1
    item = w.db.attempts[card.attempt_id].items[0]
    assert item.choice == choices[won[0]]
    assert w.db.attempts[card.attempt_id].current_position() == 1


async def test_two_simultaneous_starts_show_one_attempt(world: World) -> None:
    """Two processes handle two presses of "Bắt đầu" at once: the unique attempt number
    stops the second, which starts over and shows the first one's attempt."""
    w = world
    seed_person(w, ALICE)
    w.db.barriers["create"] = asyncio.Barrier(2)  # both pass the "none in progress" check

    async with asyncio.timeout(5):
        first, second = await asyncio.gather(
            w.service.exams.start_attempt(ALICE, shown_in=(ALICE, 1)),
            w.service.exams.start_attempt(ALICE, shown_in=(ALICE, 2)),
        )

    assert first.attempt_id == second.attempt_id
    assert len(w.db.attempts) == 1
    assert (first.chat_id, first.message_id) == (second.chat_id, second.message_id)


async def test_anothers_attempt_is_refused(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    seed_person(w, BOB)
    card = await w.service.exams.start_attempt(ALICE)
    await raises_code("foreign_attempt", w.service.exams.answer(BOB, card.attempt_id, 0, 0))
    await raises_code("foreign_attempt", w.service.exams.answer(CAROL, card.attempt_id, 0, 0))
    await raises_code("foreign_attempt", w.service.exams.answer(ALICE, 999_999, 0, 0))
    await raises_code("foreign_attempt", w.service.exams.current_card(BOB, card.attempt_id))
    assert w.db.attempts[card.attempt_id].items[0].choice is None


async def test_an_answer_at_the_deadline_itself_still_counts(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    card = await w.service.exams.start_attempt(ALICE)
    w.clock.set(card.deadline_at)
    outcome = await answer_card(w, ALICE, card, right=True)
    assert outcome.expired is False
    assert outcome.next_card is not None
    assert outcome.next_card.time_left_seconds == 0


async def test_an_answer_after_the_deadline_closes_the_attempt_as_expired(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    card = await w.service.exams.start_attempt(ALICE)
    for right in (True, True, False):
        w.clock.advance(seconds=10)
        outcome = await answer_card(w, ALICE, card, right=right)
        assert outcome.next_card is not None
        card = outcome.next_card
    w.clock.set(card.deadline_at + timedelta(seconds=1))

    outcome = await answer_card(w, ALICE, card, right=True)

    assert outcome.expired is True
    assert outcome.next_card is None
    assert outcome.summary is not None
    result = outcome.summary.result
    assert result.status is AttemptStatus.EXPIRED
    assert result.correct == 2
    assert result.finished_at == card.deadline_at
    assert result.duration_seconds == MINUTES * 60
    assert w.db.attempts[card.attempt_id].items[3].choice is None  # the late press is not kept
    assert w.timer.disarmed == [card.attempt_id]

    await raises_code("time_up", answer_card(w, ALICE, card, right=True))
    assert await w.service.exams.close_expired() == []


# ================================================================ deadlines


async def test_close_expired_closes_an_overdue_attempt_exactly_once(world: World) -> None:
    w = world
    alice = seed_person(w, ALICE)
    card = await w.service.exams.start_attempt(ALICE)
    for right in (True, False, True):
        w.clock.advance(seconds=30)
        outcome = await answer_card(w, ALICE, card, right=right)
        assert outcome.next_card is not None
        card = outcome.next_card

    w.clock.set(card.deadline_at)
    assert await w.service.exams.close_expired() == []  # not yet: the deadline itself is allowed
    w.clock.advance(seconds=1)

    assert await w.service.exams.close_expired() == [card.attempt_id]
    assert await w.service.exams.close_expired() == []
    assert await w.service.exams.close_if_expired(card.attempt_id) is False

    attempt = w.db.attempts[card.attempt_id]
    assert attempt.status is AttemptStatus.EXPIRED
    assert (attempt.correct_count, attempt.finished_at) == (2, card.deadline_at)
    assert attempt.duration_seconds == MINUTES * 60
    [row] = w.db.outbox.values()
    note = row.notification
    assert note.key == f"{RESULT_NOTIFICATION}:{card.attempt_id}"
    assert (note.person_id, note.kind) == (alice.id, RESULT_NOTIFICATION)
    assert note.payload == {"attempt_id": card.attempt_id}
    assert row.created_at == w.clock.now()
    summary = await w.service.exams.attempt_summary(card.attempt_id)
    assert summary is not None
    assert summary.result.correct == 2
    assert summary.account == ALICE
    await raises_code("time_up", answer_card(w, ALICE, card, right=True))
    assert await w.service.exams.open_deadlines() == []


async def test_close_expired_leaves_running_attempts_alone(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    seed_person(w, BOB)
    early = await w.service.exams.start_attempt(ALICE)
    w.clock.advance(minutes=10)
    late = await w.service.exams.start_attempt(BOB)
    w.clock.set(early.deadline_at + timedelta(seconds=5))

    assert await w.service.exams.close_expired() == [early.attempt_id]

    assert w.db.attempts[late.attempt_id].status is AttemptStatus.IN_PROGRESS
    assert len(w.db.outbox) == 1
    assert await w.service.exams.open_deadlines() == [(late.attempt_id, late.deadline_at)]


async def test_a_late_press_racing_the_sweep_finishes_the_attempt_once(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    card = await w.service.exams.start_attempt(ALICE)
    w.clock.set(card.deadline_at + timedelta(seconds=1))
    w.db.barriers["finish"] = asyncio.Barrier(2)  # both paths reach the compare-and-set

    async with asyncio.timeout(5):
        closed, pressed = await asyncio.gather(
            w.service.exams.close_if_expired(card.attempt_id),
            answer_card(w, ALICE, card, right=True),
            return_exceptions=True,
        )

    assert w.db.cas_refusals["finish"] == 1
    if closed is True:
        assert isinstance(pressed, ContestError) and pressed.code == "time_up"
        assert len(w.db.outbox) == 1
    else:
        assert closed is False
        assert isinstance(pressed, AnswerOutcome) and pressed.expired
        # The press shows the result; the outbox keeps it, held back for the reply.
        [row] = w.db.outbox.values()
        assert row.not_before == w.clock.now() + INLINE_RESULT_GRACE
    assert w.db.attempts[card.attempt_id].status is AttemptStatus.EXPIRED


async def test_a_new_start_closes_an_overdue_attempt_first(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    first = await w.service.exams.start_attempt(ALICE)
    w.clock.set(first.deadline_at + timedelta(minutes=1))

    second = await w.service.exams.start_attempt(ALICE)

    assert second.attempt_id != first.attempt_id
    assert second.attempt_number == 2
    assert w.db.attempts[first.attempt_id].status is AttemptStatus.EXPIRED
    assert len(w.db.outbox) == 1
    assert await w.service.exams.close_expired() == []


async def test_an_overdue_attempt_is_closed_even_when_the_window_has_closed(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    w.clock.set(CLOSES - timedelta(minutes=5))
    card = await w.service.exams.start_attempt(ALICE)
    w.clock.set(card.deadline_at + timedelta(seconds=1))

    await raises_code("round_closed", w.service.exams.start_attempt(ALICE))

    assert w.db.attempts[card.attempt_id].status is AttemptStatus.EXPIRED
    assert len(w.db.outbox) == 1


async def test_warnings_come_once_at_five_then_once_at_one_minute(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    card = await w.service.exams.start_attempt(ALICE)
    await w.service.exams.attach_message(card.attempt_id, chat_id=111, message_id=42)
    assert await w.service.exams.due_warnings() == []

    w.clock.set(card.deadline_at - timedelta(minutes=5, seconds=1))
    assert await w.service.exams.due_warnings() == []

    w.clock.set(card.deadline_at - timedelta(minutes=5))
    [five] = await w.service.exams.due_warnings()
    assert (five.attempt_id, five.account, five.chat_id) == (card.attempt_id, ALICE, 111)
    assert five.seconds_left == 300
    assert await w.service.exams.due_warnings() == []
    w.clock.advance(minutes=2)
    assert await w.service.exams.due_warnings() == []

    w.clock.set(card.deadline_at - timedelta(seconds=50))
    [one] = await w.service.exams.due_warnings()
    assert one.attempt_id == card.attempt_id
    assert one.seconds_left == 50
    assert await w.service.exams.due_warnings() == []
    w.clock.advance(seconds=40)
    assert await w.service.exams.due_warnings() == []
    assert w.db.attempts[card.attempt_id].warned == 2
    # Each warning waits in the outbox, so a failed send is tried again.
    notes = [row.notification for row in w.db.outbox.values()]
    payload = {"attempt_id": card.attempt_id}
    assert [(n.key, n.kind, n.payload) for n in notes] == [
        (f"{WARNING_NOTIFICATION}:{card.attempt_id}:1", WARNING_NOTIFICATION, payload),
        (f"{WARNING_NOTIFICATION}:{card.attempt_id}:2", WARNING_NOTIFICATION, payload),
    ]


async def test_a_queued_warning_is_worded_when_sent_and_dropped_once_over(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    card = await w.service.exams.start_attempt(ALICE, shown_in=(111, 42))
    w.clock.set(card.deadline_at - timedelta(minutes=5))
    [due] = await w.service.exams.due_warnings()
    w.clock.advance(seconds=30)  # the first send failed; the retry comes later
    later = await w.service.exams.warning_for(card.attempt_id)
    assert later is not None
    assert (later.account, later.chat_id, later.seconds_left) == (ALICE, 111, 270)
    assert due.seconds_left == 300
    w.clock.set(card.deadline_at + timedelta(seconds=1))
    assert await w.service.exams.warning_for(card.attempt_id) is None  # overdue
    w.clock.set(card.deadline_at - timedelta(minutes=1))
    outcome = AnswerOutcome(next_card=card)
    while outcome.next_card is not None:
        outcome = await answer_card(w, ALICE, outcome.next_card, right=True)
    assert outcome.summary is not None
    assert await w.service.exams.warning_for(card.attempt_id) is None  # submitted
    assert await w.service.exams.warning_for(10**6) is None


async def test_no_warning_for_a_finished_or_overdue_attempt(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    seed_person(w, BOB)
    await take_attempt(w, ALICE, correct=5, seconds_per_answer=10)
    card = await w.service.exams.start_attempt(BOB)
    w.clock.set(card.deadline_at + timedelta(seconds=1))
    assert await w.service.exams.due_warnings() == []


async def test_the_card_remembers_its_message(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    card = await w.service.exams.start_attempt(ALICE)
    assert (card.chat_id, card.message_id) == (None, None)
    await w.service.exams.attach_message(card.attempt_id, chat_id=7, message_id=99)
    outcome = await answer_card(w, ALICE, card, right=True)
    assert outcome.next_card is not None
    assert (outcome.next_card.chat_id, outcome.next_card.message_id) == (7, 99)


# ================================================================ best of two


async def test_the_attempt_with_more_correct_counts(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    first = await take_attempt(w, ALICE, correct=15, seconds_per_answer=30)
    second = await take_attempt(w, ALICE, correct=12, seconds_per_answer=10)

    assert first.summary is not None and second.summary is not None
    assert (second.summary.result.number, second.summary.result.correct) == (2, 12)
    assert second.summary.best == first.summary.result
    assert (second.summary.attempts_used, second.summary.attempts_left) == (2, 0)
    results = await w.service.results.person_results(ALICE)
    assert [r.number for r in results.results] == [1, 2]
    assert results.best == first.summary.result


async def test_with_equal_correct_the_shorter_attempt_counts(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    first = await take_attempt(w, ALICE, correct=15, seconds_per_answer=30)
    second = await take_attempt(w, ALICE, correct=15, seconds_per_answer=18)

    assert first.summary is not None and second.summary is not None
    assert first.summary.result.duration_seconds == 600
    assert second.summary.result.duration_seconds == 360
    assert second.summary.best == second.summary.result
    assert (await w.service.results.person_results(ALICE)).best == second.summary.result


async def test_a_later_slower_equal_attempt_does_not_replace_the_best(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    first = await take_attempt(w, ALICE, correct=15, seconds_per_answer=18)
    second = await take_attempt(w, ALICE, correct=15, seconds_per_answer=30)
    assert first.summary is not None and second.summary is not None
    assert second.summary.best == first.summary.result


async def test_ranking_uses_the_best_attempt_of_each_person(world: World) -> None:
    w = world
    alice = seed_person(w, ALICE)
    bob = seed_person(w, BOB)
    await take_attempt(w, ALICE, correct=10)
    await take_attempt(w, BOB, correct=14)
    await take_attempt(w, ALICE, correct=16)
    uow = FakeUnitOfWorkFactory(w.db)(write=False)
    async with uow:
        ranked = rank(await uow.attempts.results(1))
    assert [(r.rank, r.result.person_id, r.result.correct) for r in ranked] == [
        (1, alice.id, 16),
        (2, bob.id, 14),
    ]


async def test_a_third_start_is_refused(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    await take_attempt(w, ALICE, correct=3)
    await take_attempt(w, ALICE, correct=4)

    await raises_code("no_attempts_left", w.service.exams.start_attempt(ALICE))

    assert len(w.db.attempts) == 2
    status = await w.service.exams.exam_status(ALICE)
    assert (status.state, status.attempts_used, status.attempts_left) == (
        ExamState.NO_ATTEMPTS_LEFT,
        2,
        0,
    )
    assert status.best is not None and status.best.correct == 4


async def test_an_expired_attempt_uses_up_an_attempt(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    first = await w.service.exams.start_attempt(ALICE)
    w.clock.set(first.deadline_at + timedelta(seconds=1))
    await w.service.exams.close_expired()
    await take_attempt(w, ALICE, correct=1)
    await raises_code("no_attempts_left", w.service.exams.start_attempt(ALICE))


async def test_status_with_the_last_attempt_overdue_and_unclosed(world: World) -> None:
    w = world
    seed_person(w, ALICE)
    await take_attempt(w, ALICE, correct=3)
    second = await w.service.exams.start_attempt(ALICE)
    w.clock.set(second.deadline_at + timedelta(seconds=1))

    status = await w.service.exams.exam_status(ALICE)

    assert status.state is ExamState.NO_ATTEMPTS_LEFT


# ================================================================ the fake itself


async def test_the_fake_rolls_back_uncommitted_writes_and_refuses_read_only_writes() -> None:
    db = Database()
    factory = FakeUnitOfWorkFactory(db)
    async with factory() as uow:
        await uow.drafts.save(ALICE, Draft(), NOW)
    assert db.drafts == {}
    async with factory() as uow:
        await uow.drafts.save(ALICE, replace(Draft(), consent=True), NOW)
        await uow.commit()
    async with factory() as uow:
        draft = await uow.drafts.get(ALICE)
    assert draft is not None and draft.consent is True
    with pytest.raises(ReadOnlyViolation):
        async with factory(write=False) as uow:
            await uow.drafts.delete(ALICE)
    assert ALICE in db.drafts


async def test_a_replacing_import_withdraws_what_the_file_lacks(world: World) -> None:
    """A corrected question text comes in as a new question; with ``replace`` the old text
    and everything else missing from the file leave the bank, but an attempt that drew
    them can still be finished."""
    w = world
    seed_person(w, ALICE)
    seed_person(w, BOB)
    card = await w.service.exams.start_attempt(ALICE)
    bank = sorted(w.db.questions.values(), key=lambda q: q.id)
    rows = [QuestionRow(q.topic, q.text, q.options, q.answer) for q in bank[:40]]
    fixed = replace(rows[0], text=rows[0].text + " (đã sửa)")

    await raises_code(
        "bank_would_be_too_small",
        w.service.console.import_questions(rows[: QUESTIONS - 1], replace=True),
    )
    assert w.db.withdrawn == {}

    summary = await w.service.console.import_questions([fixed, *rows[1:]], replace=True)
    assert (summary.created, summary.updated, summary.withdrawn) == (1, 39, 21)
    async with w.service.uow(write=False) as uow:
        active = {q.text for q in await uow.questions.catalog()}
    assert fixed.text in active and rows[0].text not in active and len(active) == 40

    later = await w.service.exams.start_attempt(BOB)
    drawn = {item.question_id for item in w.db.attempts[later.attempt_id].items}
    assert not drawn & set(w.db.withdrawn)
    outcome = AnswerOutcome(next_card=card)
    while outcome.next_card is not None:
        outcome = await answer_card(w, ALICE, outcome.next_card, right=True)
    assert outcome.summary is not None  # the attempt with withdrawn questions still ends
    assert outcome.summary.result.correct == QUESTIONS

    again = await w.service.console.import_questions(rows, replace=True)  # the old text is back
    assert (again.created, again.updated, again.withdrawn) == (0, 40, 1)


async def test_warnings_are_claimed_before_older_results(world: World) -> None:
    """Many attempts ran out together and their results wait in the outbox: a "1 minute
    left" warning for someone still answering must not queue behind them. Once a claim
    shows the queue is longer than a claim, the next one looks for warnings first."""
    w = world
    for telegram_id in (ALICE, BOB, CAROL):
        seed_person(w, telegram_id)
    done = [await w.service.exams.start_attempt(a) for a in (ALICE, BOB)]
    w.clock.advance(minutes=2)
    running = await w.service.exams.start_attempt(CAROL)
    w.clock.set(done[-1].deadline_at + timedelta(seconds=1))
    closed = await w.service.exams.close_expired()
    assert sorted(closed) == sorted(c.attempt_id for c in done)  # two results queued
    w.clock.set(running.deadline_at - timedelta(seconds=50))
    assert len(await w.service.exams.due_warnings()) == 1  # then a warning

    first = await w.service.outbox.claim("me", limit=1)  # the oldest: the queue is long
    second = await w.service.outbox.claim("me", limit=1)
    rest = await w.service.outbox.claim("me", limit=10)
    assert [n.kind for n in first] == [RESULT_NOTIFICATION]
    assert [n.kind for n in second] == [WARNING_NOTIFICATION]  # not behind the other result
    assert [n.kind for n in rest] == [RESULT_NOTIFICATION]
