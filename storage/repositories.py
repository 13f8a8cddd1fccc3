"""Repositories implementing the ``contest.ports`` Protocols over one AsyncSession."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from contest import importing
from contest.errors import Conflict
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
from contest.ports import VOIDED_KEY, ImportSummary, Notification, UnitPage
from contest.registration import Draft
from contest.text import fold, question_key
from storage import models as m
from storage.presses import RECOUNT, driver_results


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def to_unit(row: m.UnitRow) -> Unit:
    return Unit(row.id, row.code, row.name, UnitKind(row.kind), row.staff_count)


def to_question(row: m.QuestionRow) -> Question:
    return Question(
        row.id, row.topic, row.text, (row.option_a, row.option_b, row.option_c), row.answer
    )


def to_person(row: Any) -> Person:
    """A person from a ``PersonRow`` or a Core row of the persons table."""
    return Person(
        id=row.id,
        full_name=row.full_name,
        birth_date=row.birth_date,
        phone=row.phone,
        group=Group(row.group),
        unit_id=row.unit_id,
        position=Position(row.position) if row.position else None,
        ward_id=row.ward_id,
        consent_at=row.consent_at,
        registered_at=row.registered_at,
        locked_at=row.locked_at,
        lock_reason=row.lock_reason,
        unreachable_at=row.unreachable_at,
        reminders_off=bool(row.reminders_off),
    )


class SqlRepository:
    """A repository over the unit of work's session. Core statements run on the session's
    connection, fetched once per transaction (``forget_connection`` after a commit)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._conn: AsyncConnection | None = None

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self.session.connection()
        return self._conn

    def forget_connection(self) -> None:
        self._conn = None


class SqlUnits(SqlRepository):
    async def get(self, unit_id: int) -> Unit | None:
        row = await self.session.get(m.UnitRow, unit_id)
        return to_unit(row) if row else None

    async def by_code(self, code: str) -> Unit | None:
        row = await self.session.scalar(select(m.UnitRow).where(m.UnitRow.code == code))
        return to_unit(row) if row else None

    async def page(self, kind: UnitKind, page: int, size: int, query: str | None) -> UnitPage:
        conditions = [m.UnitRow.kind == kind.value]
        if query:
            conditions.append(m.UnitRow.name_key.contains(fold(query), autoescape=True))
        total = await self.session.scalar(
            select(func.count()).select_from(m.UnitRow).where(*conditions)
        )
        pages = max(1, math.ceil((total or 0) / size))
        page = min(max(page, 0), pages - 1)
        rows = await self.session.scalars(
            select(m.UnitRow)
            .where(*conditions)
            .order_by(m.UnitRow.name_key, m.UnitRow.id)
            .offset(page * size)
            .limit(size)
        )
        return UnitPage(kind, [to_unit(r) for r in rows], page, pages, query)

    async def upsert(self, rows: Sequence[importing.UnitRow]) -> ImportSummary:
        existing = {r.code: r for r in await self.session.scalars(select(m.UnitRow))}
        created = updated = 0
        now = _now()
        for row in rows:
            current = existing.get(row.code)
            if current is None:
                self.session.add(
                    m.UnitRow(
                        code=row.code,
                        name=row.name,
                        kind=row.kind.value,
                        staff_count=row.staff_count,
                        name_key=fold(row.name),
                        updated_at=now,
                    )
                )
                created += 1
            else:
                current.name, current.kind = row.name, row.kind.value
                current.staff_count, current.name_key = row.staff_count, fold(row.name)
                current.updated_at = now
                updated += 1
        await self.session.flush()
        return ImportSummary(created, updated)

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(m.UnitRow)) or 0)


class SqlQuestions(SqlRepository):
    async def catalog(self, *, include_inactive: bool = False) -> list[Question]:
        q = m.QuestionRow.__table__.c
        stmt = select(q.id, q.topic, q.text, q.option_a, q.option_b, q.option_c, q.answer)
        if not include_inactive:
            stmt = stmt.where(q.active.is_(True))
        conn = await self._connection()
        rows = await conn.execute(stmt.order_by(q.id))
        return [
            Question(r.id, r.topic, r.text, (r.option_a, r.option_b, r.option_c), r.answer)
            for r in rows
        ]

    async def get_many(self, ids: Sequence[int]) -> dict[int, Question]:
        rows = await self.session.scalars(select(m.QuestionRow).where(m.QuestionRow.id.in_(ids)))
        return {r.id: to_question(r) for r in rows}

    async def answer_of(self, question_id: int) -> int | None:
        conn = await self._connection()
        return await conn.scalar(_ANSWER_OF, {"question_id": question_id})

    async def upsert(
        self, rows: Sequence[importing.QuestionRow], *, replace: bool = False
    ) -> ImportSummary:
        existing = {r.text_key: r for r in await self.session.scalars(select(m.QuestionRow))}
        imported: set[str] = set()
        created = updated = 0
        now = _now()
        for row in rows:
            key = question_key(row.text)
            imported.add(key)
            current = existing.get(key)
            a, b, c = row.options
            if current is None:
                existing[key] = m.QuestionRow(
                    text_key=key,
                    topic=row.topic,
                    text=row.text,
                    option_a=a,
                    option_b=b,
                    option_c=c,
                    answer=row.answer,
                    active=True,
                    updated_at=now,
                )
                self.session.add(existing[key])
                created += 1
            else:
                current.topic, current.text = row.topic, row.text
                current.option_a, current.option_b, current.option_c = a, b, c
                current.answer, current.updated_at = row.answer, now
                current.active = current.voided_at is None  # a voided question stays out
                updated += 1
        withdrawn = 0
        if replace:
            for key, current in existing.items():
                if key not in imported and current.active:
                    current.active, current.updated_at = False, now
                    withdrawn += 1
        await self.session.flush()
        return ImportSummary(created, updated, withdrawn)

    async def count(self) -> int:
        stmt = select(func.count()).select_from(m.QuestionRow).where(m.QuestionRow.active)
        return int(await self.session.scalar(stmt) or 0)

    async def drawn(self, ids: Sequence[int]) -> set[int]:
        found: set[int] = set()
        conn = await self._connection()
        unique = sorted(set(ids))
        for start in range(0, len(unique), 500):
            # EXISTS per question: one probe of the question_id index each.
            chunk = unique[start : start + 500]
            q = m.QuestionRow.__table__.c
            stmt = select(q.id).where(
                q.id.in_(chunk),
                select(ITEMS.question_id).where(ITEMS.question_id == q.id).exists(),
            )
            found.update(int(i) for i in (await conn.execute(stmt)).scalars())
        return found


class SqlPersons(SqlRepository):
    async def by_account(self, account: Account) -> Person | None:
        conn = await self._connection()
        params = {"channel": account.channel.value, "external_id": account.user_id}
        row = (await conn.execute(_PERSON_BY_ACCOUNT, params)).first()
        return to_person(row) if row else None

    async def by_phone(self, phone: str) -> Person | None:
        row = await self.session.scalar(select(m.PersonRow).where(m.PersonRow.phone == phone))
        return to_person(row) if row else None

    async def get(self, person_id: int) -> Person | None:
        conn = await self._connection()
        row = (await conn.execute(_PERSON_BY_ID, {"person_id": person_id})).first()
        return to_person(row) if row else None

    async def set_reminders(self, person_id: int, on: bool) -> None:
        conn = await self._connection()
        await conn.execute(
            update(PERSONS).where(PERSONS.c.id == person_id).values(reminders_off=not on)
        )

    async def set_unreachable(self, person_id: int, when: datetime | None) -> None:
        conn = await self._connection()
        await conn.execute(
            update(PERSONS).where(PERSONS.c.id == person_id).values(unreachable_at=when)
        )

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
        row = m.PersonRow(
            full_name=full_name,
            birth_date=birth_date,
            phone=phone,
            group=group.value,
            unit_id=unit_id,
            position=position.value if position else None,
            ward_id=ward_id,
            consent_at=consent_at,
            registered_at=registered_at,
            reminders_off=False,
        )
        self.session.add(row)
        await self.session.flush()
        self.session.add(
            m.AccountRow(
                channel=account.channel.value,
                external_id=account.user_id,
                person_id=row.id,
                linked_at=registered_at,
                last_used_at=registered_at,
            )
        )
        await self.session.flush()
        return to_person(row)


ACCOUNTS = cast(Table, m.AccountRow.__table__)


def to_account(row: Any) -> Account:
    return Account(Channel(row.channel), row.external_id)


class SqlAccounts(SqlRepository):
    async def of_person(self, person_id: int) -> list[Account]:
        conn = await self._connection()
        rows = await conn.execute(
            select(ACCOUNTS.c.channel, ACCOUNTS.c.external_id)
            .where(ACCOUNTS.c.person_id == person_id)
            .order_by(ACCOUNTS.c.id)
        )
        return [to_account(r) for r in rows]

    async def preferred(self, person_id: int) -> Account | None:
        conn = await self._connection()
        row = (await conn.execute(_PREFERRED_ACCOUNT, {"person_id": person_id})).first()
        return to_account(row) if row else None

    async def touch(self, account: Account, now: datetime) -> None:
        conn = await self._connection()
        await conn.execute(
            update(ACCOUNTS)
            .where(
                ACCOUNTS.c.channel == account.channel.value,
                ACCOUNTS.c.external_id == account.user_id,
                ACCOUNTS.c.last_used_at < now,
            )
            .values(last_used_at=now)
        )

    async def link(self, account: Account, person_id: int, now: datetime) -> None:
        conn = await self._connection()
        try:
            await conn.execute(
                insert(ACCOUNTS).values(
                    channel=account.channel.value,
                    external_id=account.user_id,
                    person_id=person_id,
                    linked_at=now,
                    last_used_at=now,
                )
            )
        except IntegrityError as exc:
            raise Conflict("account already linked") from exc


class SqlDrafts(SqlRepository):
    @staticmethod
    def _key(account: Account) -> tuple[str, str]:
        return (account.channel.value, account.user_id)

    async def get(self, account: Account) -> Draft | None:
        row = await self.session.get(m.DraftRow, self._key(account))
        return Draft.from_dict(json.loads(row.data)) if row else None

    async def save(self, account: Account, draft: Draft, now: datetime) -> None:
        data = json.dumps(draft.to_dict(), ensure_ascii=False)
        row = await self.session.get(m.DraftRow, self._key(account))
        if row is None:
            channel, external_id = self._key(account)
            self.session.add(
                m.DraftRow(channel=channel, external_id=external_id, data=data, updated_at=now)
            )
        else:
            row.data, row.updated_at = data, now
        await self.session.flush()

    async def delete(self, account: Account) -> None:
        row = await self.session.get(m.DraftRow, self._key(account))
        if row is not None:
            await self.session.delete(row)
            await self.session.flush()


IN_PROGRESS = AttemptStatus.IN_PROGRESS.value
ATTEMPTS = cast(Table, m.AttemptRow.__table__)
PERSONS = cast(Table, m.PersonRow.__table__)
ITEMS_TABLE = cast(Table, m.AttemptItemRow.__table__)
ITEMS = ITEMS_TABLE.c


_RESULT_COLUMNS = (
    ATTEMPTS.c.id,
    ATTEMPTS.c.person_id,
    ATTEMPTS.c.number,
    ATTEMPTS.c.correct_count,
    ATTEMPTS.c.question_count,
    ATTEMPTS.c.duration_seconds,
    ATTEMPTS.c.finished_at,
    ATTEMPTS.c.status,
    ATTEMPTS.c.prediction,
)


def _finished_in(round: int) -> tuple[Any, ...]:
    return (ATTEMPTS.c.round == round, ATTEMPTS.c.status != IN_PROGRESS)


def _result_of(row: Any, round: int) -> AttemptResult:
    return AttemptResult(
        row.id,
        row.person_id,
        round,
        row.number,
        row.correct_count,
        row.question_count,
        row.duration_seconds or 0.0,
        row.finished_at,
        AttemptStatus(row.status),
        row.prediction,
    )


# A voided question's key is VOIDED_KEY: every answer to it is right.
_ANSWER_OF = select(
    case(
        (m.QuestionRow.__table__.c.voided_at.is_(None), m.QuestionRow.__table__.c.answer),
        else_=VOIDED_KEY,
    )
).where(m.QuestionRow.__table__.c.id == bindparam("question_id"))
_GET_ATTEMPT = select(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("attempt_id"))
_OWNED_ATTEMPT = (
    select(ATTEMPTS)
    .join(ACCOUNTS, ACCOUNTS.c.person_id == ATTEMPTS.c.person_id)
    .where(
        ATTEMPTS.c.id == bindparam("attempt_id"),
        ACCOUNTS.c.channel == bindparam("channel"),
        ACCOUNTS.c.external_id == bindparam("external_id"),
    )
)
_ITEMS = (
    select(
        ITEMS.position,
        ITEMS.question_id,
        ITEMS.option_order,
        ITEMS.choice,
        ITEMS.correct,
        ITEMS.answered_at,
    )
    .where(ITEMS.attempt_id == bindparam("attempt_id"))
    .order_by(ITEMS.position)
)
_RECOUNT = text(RECOUNT)
# Starting an attempt.
_IN_PROGRESS = (
    select(ATTEMPTS.c.id)
    .where(
        ATTEMPTS.c.person_id == bindparam("person_id"),
        ATTEMPTS.c.round == bindparam("round"),
        ATTEMPTS.c.status == IN_PROGRESS,
    )
    .order_by(ATTEMPTS.c.id.desc())
    .limit(1)
)
_COUNT_FOR = select(func.count()).where(
    ATTEMPTS.c.person_id == bindparam("person_id"), ATTEMPTS.c.round == bindparam("round")
)
_CREATE_ATTEMPT = insert(ATTEMPTS).returning(ATTEMPTS.c.id)
_CREATE_ITEM = insert(ITEMS_TABLE)
_PERSON_BY_ACCOUNT = (
    select(PERSONS)
    .join(ACCOUNTS, ACCOUNTS.c.person_id == PERSONS.c.id)
    .where(
        ACCOUNTS.c.channel == bindparam("channel"),
        ACCOUNTS.c.external_id == bindparam("external_id"),
    )
)
_PREFERRED_ACCOUNT = (
    select(ACCOUNTS.c.channel, ACCOUNTS.c.external_id)
    .where(ACCOUNTS.c.person_id == bindparam("person_id"))
    .order_by(ACCOUNTS.c.last_used_at.desc(), ACCOUNTS.c.id.desc())
    .limit(1)
)
_PERSON_BY_ID = select(PERSONS).where(PERSONS.c.id == bindparam("person_id"))
# Summaries and notifications.
_RESULTS_FOR = select(*_RESULT_COLUMNS).where(
    ATTEMPTS.c.person_id == bindparam("person_id"),
    ATTEMPTS.c.round == bindparam("round"),
    ATTEMPTS.c.status != IN_PROGRESS,
)
_OUTBOX = cast(Table, m.OutboxRow.__table__)
_MARK_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("notification_id"))
    .values(sent_at=bindparam("sent_at"), outcome="sent")
)
# Row lock on PostgreSQL (SQLite renders none: BEGIN IMMEDIATE already serialises writers).
_GET_ATTEMPT_LOCKED = _GET_ATTEMPT.with_for_update(of=ATTEMPTS)
_OWNED_ATTEMPT_LOCKED = _OWNED_ATTEMPT.with_for_update(of=ATTEMPTS)
_RECORD_ANSWER = (
    update(ITEMS_TABLE)
    .where(
        ITEMS.attempt_id == bindparam("b_attempt"),
        ITEMS.position == bindparam("b_position"),
        ITEMS.choice.is_(None),
    )
    .values(
        choice=bindparam("b_choice"),
        correct=bindparam("b_correct"),
        answered_at=bindparam("b_answered_at"),
    )
)


class SqlAttempts(SqlRepository):
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
        values = {
            "person_id": person_id,
            "round": round,
            "number": number,
            "question_count": len(items),
            "status": IN_PROGRESS,
            "started_at": started_at,
            "deadline_at": deadline_at,
            "correct_count": 0,
            "warned": 0,
            "chat_id": chat_id,
            "message_id": message_id,
        }
        conn = await self._connection()
        try:
            attempt_id = (await conn.execute(_CREATE_ATTEMPT, values)).scalar_one()
        except IntegrityError as exc:
            # (person, round, number) is unique: another process started this attempt.
            raise Conflict("attempt already started") from exc
        await conn.execute(
            _CREATE_ITEM,
            [
                {
                    "attempt_id": attempt_id,
                    "position": item.position,
                    "question_id": item.question_id,
                    "option_order": "".join(str(i) for i in item.order),
                }
                for item in items
            ],
        )
        return Attempt(
            id=attempt_id,
            person_id=person_id,
            round=round,
            number=number,
            started_at=started_at,
            deadline_at=deadline_at,
            chat_id=chat_id,
            message_id=message_id,
            items=list(items),
        )

    @staticmethod
    def _to_attempt(row: Any, items: list[AttemptItem]) -> Attempt:
        return Attempt(
            id=row.id,
            person_id=row.person_id,
            round=row.round,
            number=row.number,
            started_at=row.started_at,
            deadline_at=row.deadline_at,
            status=AttemptStatus(row.status),
            finished_at=row.finished_at,
            correct_count=row.correct_count,
            duration_seconds=row.duration_seconds,
            warned=row.warned,
            chat_id=row.chat_id,
            message_id=row.message_id,
            items=items,
            prediction=row.prediction,
        )

    # The answer path runs these on every press: statements built once (module level, with
    # bind parameters) and run as plain Core on the session's connection.

    async def _fetch(self, stmt: Any, params: dict[str, Any]) -> Attempt | None:
        """The attempt's row, then its items (two small queries beat one joined query that
        repeats and converts the attempt's columns on every item row)."""
        conn = await self._connection()
        row = (await conn.execute(stmt, params)).first()
        if row is None:
            return None
        rows = await conn.execute(_ITEMS, {"attempt_id": row.id})
        items = [
            AttemptItem(
                position=r.position,
                question_id=r.question_id,
                order=(int(r.option_order[0]), int(r.option_order[1]), int(r.option_order[2])),
                choice=r.choice,
                correct=r.correct,
                answered_at=r.answered_at,
            )
            for r in rows
        ]
        return self._to_attempt(row, items)

    async def get(self, attempt_id: int, *, lock: bool = False) -> Attempt | None:
        stmt = _GET_ATTEMPT_LOCKED if lock else _GET_ATTEMPT
        return await self._fetch(stmt, {"attempt_id": attempt_id})

    async def owned(
        self, attempt_id: int, account: Account, *, lock: bool = False
    ) -> Attempt | None:
        stmt = _OWNED_ATTEMPT_LOCKED if lock else _OWNED_ATTEMPT
        params = {
            "attempt_id": attempt_id,
            "channel": account.channel.value,
            "external_id": account.user_id,
        }
        return await self._fetch(stmt, params)

    async def in_progress(self, person_id: int, round: int) -> Attempt | None:
        conn = await self._connection()
        attempt_id = await conn.scalar(_IN_PROGRESS, {"person_id": person_id, "round": round})
        return await self.get(attempt_id) if attempt_id is not None else None

    async def count_for(self, person_id: int, round: int) -> int:
        conn = await self._connection()
        return int(await conn.scalar(_COUNT_FOR, {"person_id": person_id, "round": round}) or 0)

    async def results_for(self, person_id: int, round: int) -> list[AttemptResult]:
        conn = await self._connection()
        rows = await conn.execute(_RESULTS_FOR, {"person_id": person_id, "round": round})
        return [_result_of(r, round) for r in rows]

    async def results(self, round: int) -> list[AttemptResult]:
        """Every finished attempt of a round."""
        conn = await self._connection()
        rows = await conn.execute(select(*_RESULT_COLUMNS).where(*_finished_in(round)))
        return [_result_of(r, round) for r in rows]

    async def best_results(self, round: int) -> list[AttemptResult]:
        """Each person's counting attempt (flagged by every finish: most correct, shorter
        time, earlier submission), so ranking reads one row per person. Locked persons are
        left out (their attempts, even one finished after the lock, do not count).

        A whole round is read (100,000 rows for a city): the rows come as the driver gives
        them and are converted here, without SQLAlchemy's per-value result processing.
        """
        a = ATTEMPTS.c
        locked = select(PERSONS.c.id).where(PERSONS.c.locked_at.is_not(None))
        stmt = select(
            a.id,
            a.person_id,
            a.round,
            a.number,
            a.correct_count,
            a.question_count,
            a.duration_seconds,
            a.finished_at,
            a.status,
        ).where(a.round == round, a.counting.is_(True), a.person_id.not_in(locked))
        conn = await self._connection()
        # The round number is our own integer: rendered inline, the SQL runs as it is.
        sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        return driver_results((await conn.exec_driver_sql(sql)).all())

    async def record_answer(
        self, attempt_id: int, position: int, choice: int, correct: bool, now: datetime
    ) -> bool:
        conn = await self._connection()
        result = await conn.execute(
            _RECORD_ANSWER,
            {
                "b_attempt": attempt_id,
                "b_position": position,
                "b_choice": choice,
                "b_correct": correct,
                "b_answered_at": now,
            },
        )
        return _rowcount(result) == 1

    async def finish(
        self,
        attempt_id: int,
        status: AttemptStatus,
        finished_at: datetime,
        correct: int,
        duration_seconds: float,
    ) -> bool:
        result = await self.session.execute(
            update(m.AttemptRow)
            .where(m.AttemptRow.id == attempt_id, m.AttemptRow.status == IN_PROGRESS)
            .values(
                status=status.value,
                finished_at=finished_at,
                correct_count=correct,
                duration_seconds=duration_seconds,
            )
        )
        if _rowcount(result) != 1:
            return False
        await self.session.execute(_RECOUNT, {"attempt_id": attempt_id})
        return True

    async def set_message(self, attempt_id: int, chat_id: int, message_id: int) -> None:
        await self.session.execute(
            update(m.AttemptRow)
            .where(m.AttemptRow.id == attempt_id)
            .values(chat_id=chat_id, message_id=message_id)
        )

    async def expired_ids(self, now: datetime, limit: int) -> list[int]:
        rows = await self.session.scalars(
            select(m.AttemptRow.id)
            .where(m.AttemptRow.status == IN_PROGRESS, m.AttemptRow.deadline_at < now)
            .order_by(m.AttemptRow.deadline_at)
            .limit(limit)
        )
        return list(rows)

    async def warn_candidates(self, now: datetime, within_seconds: float, level: int) -> list[int]:
        rows = await self.session.scalars(
            select(m.AttemptRow.id).where(
                m.AttemptRow.status == IN_PROGRESS,
                m.AttemptRow.warned <= level,
                m.AttemptRow.deadline_at > now,
                m.AttemptRow.deadline_at <= now + timedelta(seconds=within_seconds),
            )
        )
        return list(rows)

    async def mark_warned(self, attempt_id: int, level: int) -> bool:
        result = await self.session.execute(
            update(m.AttemptRow)
            .where(m.AttemptRow.id == attempt_id, m.AttemptRow.warned < level)
            .values(warned=level)
        )
        return _rowcount(result) == 1

    async def open_deadlines(self) -> list[tuple[int, datetime]]:
        rows = await self.session.execute(
            select(m.AttemptRow.id, m.AttemptRow.deadline_at).where(
                m.AttemptRow.status == IN_PROGRESS
            )
        )
        return [(r.id, r.deadline_at) for r in rows]

    async def awaiting_prediction(self, person_id: int, now: datetime) -> Attempt | None:
        attempt = await self._fetch(_LAST_ATTEMPT, {"person_id": person_id})
        if (
            attempt is None
            or attempt.round != 1  # the prediction question belongs to round 1
            or attempt.status is not AttemptStatus.SUBMITTED
            or attempt.prediction is not None
            or attempt.expired_at(now)
        ):
            return None
        return attempt

    async def set_prediction(self, attempt_id: int, prediction: int) -> bool:
        result = await self.session.execute(
            update(m.AttemptRow)
            .where(
                m.AttemptRow.id == attempt_id,
                m.AttemptRow.status == AttemptStatus.SUBMITTED.value,
                m.AttemptRow.prediction.is_(None),
            )
            .values(prediction=prediction)
        )
        return _rowcount(result) == 1

    async def ranking_results(self, round: int) -> list[AttemptResult]:
        """Every finished attempt of the round with its prediction, locked persons left
        out; read as ``best_results`` reads (driver rows, converted here)."""
        a = ATTEMPTS.c
        locked = select(PERSONS.c.id).where(PERSONS.c.locked_at.is_not(None))
        stmt = select(
            a.id,
            a.person_id,
            a.round,
            a.number,
            a.correct_count,
            a.question_count,
            a.duration_seconds,
            a.finished_at,
            a.status,
            a.prediction,
        ).where(a.round == round, a.status != IN_PROGRESS, a.person_id.not_in(locked))
        conn = await self._connection()
        sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        return driver_results((await conn.exec_driver_sql(sql)).all())

    async def prediction_counts(self, round: int) -> tuple[int, int]:
        conn = await self._connection()
        row = (
            await conn.execute(
                select(func.count(), func.count(ATTEMPTS.c.prediction)).where(*_finished_in(round))
            )
        ).one()
        return int(row[0] or 0), int(row[1] or 0)

    async def recount(self, round: int, official: int | None) -> None:
        conn = await self._connection()
        if official is None:
            await conn.execute(_RECOUNT_ROUND, {"round": round})
        else:
            await conn.execute(_RECOUNT_ROUND_BY_PREDICTION, {"round": round, "official": official})


# The last attempt a person started (of any round): the one a typed prediction is for.
_LAST_ATTEMPT = (
    select(ATTEMPTS)
    .where(ATTEMPTS.c.person_id == bindparam("person_id"))
    .order_by(ATTEMPTS.c.started_at.desc(), ATTEMPTS.c.id.desc())
    .limit(1)
)
# The counting attempts of a round by the tie rule (storage.presses.RECOUNT_ALL's order, with
# the prediction closest to the official figure before the time once that is known; an
# attempt without a prediction after those with one).
_BY_PREDICTION = "CASE WHEN prediction IS NULL THEN 1 ELSE 0 END, ABS(prediction - :official), "


def _recount_round(by_prediction: bool) -> Any:
    order = "correct_count DESC, " + (_BY_PREDICTION if by_prediction else "")
    sql = text(
        "UPDATE attempts SET counting = (id IN ("
        "SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY person_id ORDER BY "
        f"{order}COALESCE(duration_seconds, 0), finished_at, id) AS pick "
        "FROM attempts WHERE round = :round AND status <> 'in_progress') picks "
        "WHERE pick = 1)) WHERE round = :round"
    )
    if by_prediction:
        return sql.bindparams(bindparam("official", type_=BigInteger))
    return sql


_RECOUNT_ROUND = _recount_round(False)
_RECOUNT_ROUND_BY_PREDICTION = _recount_round(True)


class SqlOutbox(SqlRepository):
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
        dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        values = {
            "key": key,
            "person_id": person_id,
            "kind": kind,
            "payload": json.dumps(payload, ensure_ascii=False),
            "created_at": now,
            "tries": 0,
            "not_before": not_before,
            "expires_at": expires_at,
        }
        stmt = insert(m.OutboxRow).values(**values).on_conflict_do_nothing(index_elements=["key"])
        return _rowcount(await self.session.execute(stmt)) == 1

    def _claimable(self, now: datetime) -> Any:
        return and_(
            m.OutboxRow.sent_at.is_(None),
            or_(m.OutboxRow.claimed_until.is_(None), m.OutboxRow.claimed_until < now),
            or_(m.OutboxRow.not_before.is_(None), m.OutboxRow.not_before <= now),
        )

    async def claim(
        self,
        now: datetime,
        lease_seconds: float,
        limit: int,
        owner: str,
        kinds: Sequence[str] | None = None,
    ) -> list[Notification]:
        found = await self.candidates(now, limit, kinds=kinds, lapsed=True)
        found += await self.candidates(now, limit - len(found), kinds=kinds)
        taken = await self.take([n.id for n in found], now, lease_seconds, owner)
        return [replace(n, tries=taken[n.id]) for n in found if n.id in taken]

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
        """Pending notifications, oldest first, that a claim may take (a read: ``take``
        decides). ``lapsed``: only those whose claim ran out, else only those unclaimed
        (both an index range of ``ix_outbox_pending``); ``after``: ids above it only (a
        cursor: the index is read from there, not from its start); ``first``: these kinds
        before the others."""
        if limit <= 0:
            return []
        o = _OUTBOX.c
        stmt = select(o.id, o.key, o.person_id, o.kind, o.payload, o.tries).where(
            o.sent_at.is_(None),
            o.claimed_until < now if lapsed else o.claimed_until.is_(None),
            or_(o.not_before.is_(None), o.not_before <= now),
        )
        if kinds is not None:
            stmt = stmt.where(o.kind.in_(list(kinds)))
        if exclude:
            stmt = stmt.where(o.kind.not_in(list(exclude)))
        if after is not None:
            stmt = stmt.where(o.id > after)
        if channels is not None:
            a = ACCOUNTS.c
            reachable = (
                select(a.id)
                .where(a.person_id == o.person_id, a.channel.in_([c.value for c in channels]))
                .exists()
            )
            stmt = stmt.where(or_(o.person_id.is_(None), reachable))
        order: list[Any] = []
        if first:
            order.append(case({kind: i for i, kind in enumerate(first)}, value=o.kind, else_=99))
        conn = await self._connection()
        rows = await conn.execute(stmt.order_by(*order, o.id).limit(limit))
        return [
            Notification(r.id, r.key, r.person_id, r.kind, json.loads(r.payload), r.tries + 1)
            for r in rows
        ]

    async def recipients(self, person_ids: Sequence[int]) -> dict[int, Account]:
        """Each person's preferred account: the one used last."""
        wanted = sorted(set(person_ids))
        found: dict[int, tuple[datetime, int, Account]] = {}
        conn = await self._connection()
        a = ACCOUNTS.c
        for start in range(0, len(wanted), 500):
            rows = await conn.execute(
                select(a.id, a.person_id, a.channel, a.external_id, a.last_used_at).where(
                    a.person_id.in_(wanted[start : start + 500])
                )
            )
            for r in rows:
                best = found.get(r.person_id)
                if best is None or (r.last_used_at, r.id) > best[:2]:
                    found[r.person_id] = (r.last_used_at, r.id, to_account(r))
        return {person_id: best[2] for person_id, best in found.items()}

    async def take(
        self, ids: Sequence[int], now: datetime, lease_seconds: float, owner: str
    ) -> dict[int, int]:
        """Claim these notifications for ``lease_seconds`` if they are still claimable (a
        compare-and-set, one statement per 500); their tries so far, this one included."""
        o = _OUTBOX.c
        until = now + timedelta(seconds=lease_seconds)
        taken: dict[int, int] = {}
        conn = await self._connection()
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), 500):
            rows = await conn.execute(
                update(_OUTBOX)
                .where(o.id.in_(wanted[start : start + 500]), self._claimable(now))
                .values(claimed_until=until, claimed_by=owner, tries=o.tries + 1)
                .returning(o.id, o.tries)
            )
            taken.update({r.id: r.tries for r in rows})
        return taken

    async def release(self, ids: Sequence[int]) -> None:
        """Give back claimed notifications that were never tried (their claim and try
        undone): offered again at once."""
        o = _OUTBOX.c
        conn = await self._connection()
        for start in range(0, len(ids), 500):
            await conn.execute(
                update(_OUTBOX)
                .where(o.id.in_(list(ids[start : start + 500])), o.sent_at.is_(None))
                .values(claimed_until=None, claimed_by=None, tries=o.tries - 1)
            )

    async def expire(self, now: datetime) -> int:
        result = await self.session.execute(
            update(m.OutboxRow)
            .where(self._claimable(now), m.OutboxRow.expires_at < now)
            .values(sent_at=now, outcome="expired")
        )
        return _rowcount(result)

    async def mark_sent(self, notification_id: int, now: datetime) -> None:
        conn = await self._connection()
        await conn.execute(_MARK_SENT, {"notification_id": notification_id, "sent_at": now})

    async def mark_sent_many(self, notification_ids: Sequence[int], now: datetime) -> None:
        o = _OUTBOX.c
        conn = await self._connection()
        ids = list(notification_ids)
        for start in range(0, len(ids), 500):
            await conn.execute(
                update(_OUTBOX)
                .where(o.id.in_(ids[start : start + 500]))
                .values(sent_at=now, outcome="sent")
            )

    async def end(
        self, notification_id: int, now: datetime, outcome: str, error: str | None = None
    ) -> None:
        await self.session.execute(
            update(m.OutboxRow)
            .where(m.OutboxRow.id == notification_id)
            .values(sent_at=now, outcome=outcome, last_error=error[:500] if error else None)
        )

    async def retry_at(self, notification_id: int, error: str, when: datetime) -> None:
        await self.session.execute(
            update(m.OutboxRow)
            .where(m.OutboxRow.id == notification_id, m.OutboxRow.sent_at.is_(None))
            .values(last_error=error[:500], not_before=when, claimed_until=None)
        )

    async def end_pending(self, key: str, now: datetime, outcome: str) -> bool:
        result = await self.session.execute(
            update(m.OutboxRow)
            .where(
                m.OutboxRow.key == key,
                m.OutboxRow.sent_at.is_(None),
                or_(m.OutboxRow.claimed_until.is_(None), m.OutboxRow.claimed_until < now),
            )
            .values(sent_at=now, outcome=outcome)
        )
        return _rowcount(result) == 1


def _now() -> datetime:
    return datetime.now(UTC)
