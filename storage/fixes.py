"""Fixing a question during the contest, in SQL: what a fix touches, the re-grade of every
answer given to the question (items, the attempts' scores, the persons' counting attempts,
one message per person whose result changed), and requests waiting for a confirmation.

A re-grade is four statements in the caller's transaction, each driven by the index of
``attempt_items.question_id``. The items whose grade changes ("flipped") are found by the
same predicate in each, so the statements that need the old grades run before the items
are rewritten: the outbox rows, the scores (one item per attempt: +1 or -1), the counting
flags of the persons concerned (the rule of ``storage.presses.RECOUNT``), then the items.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, text, update

from contest.model import Question
from contest.ports import (
    FixImpact,
    FixNotice,
    QuestionFix,
    QuestionState,
    Regraded,
)
from contest.text import question_key
from storage import models as m
from storage.files import MAX_UPLOAD_BYTES, read_table
from storage.files import Table as FileTable
from storage.repositories import SqlRepository


def read_upload(path: str, data: bytes) -> FileTable:
    """A file sent in the chat (``contest.ports.UploadReader``): read exactly as the
    command line reads one, within the chat's size cap."""
    return read_table(path, data, max_bytes=MAX_UPLOAD_BYTES)


QUESTIONS = cast(Table, m.QuestionRow.__table__)
FIXES = cast(Table, m.QuestionFixRow.__table__)
STATE = cast(Table, m.ContestStateRow.__table__)
IN_PROGRESS = "in_progress"

# The new grade of an item of the question: with the key :k (text '0'..'2'), an answered
# item is right when the option shown under the chosen label is the key (option_order[i]
# is the original option shown under label i); a void makes every item right.
KEY_GRADE = "(substr(i.option_order, i.choice + 1, 1) = :k)"
KEY_FLIPPED = (
    f"i.question_id = :q AND i.choice IS NOT NULL AND {KEY_GRADE} <> COALESCE(i.correct, false)"
)
VOID_FLIPPED = "i.question_id = :q AND COALESCE(i.correct, false) = false"


# Whether an attempt is its person's counting one in its round (storage.presses.RECOUNT).
COUNTING = (
    "COALESCE(id = (SELECT b.id FROM attempts b WHERE b.person_id = attempts.person_id "
    "AND b.round = attempts.round AND b.status <> 'in_progress' "
    "ORDER BY b.correct_count DESC, COALESCE(b.duration_seconds, 0), b.finished_at, b.id "
    "LIMIT 1), false)"
)


def flipped(key: int | None) -> str:
    """The items of question :q whose grade a new key (None: a void) changes."""
    return KEY_FLIPPED if key is not None else VOID_FLIPPED


def grade(key: int | None) -> str:
    return KEY_GRADE if key is not None else "true"


def regrade_sql(key: int | None) -> list[tuple[str, str]]:
    """The re-grade's statements, in order, with a name each (its parameters: :q, :k,
    :prefix, :kind, :payload, :now, :expires)."""
    changed = flipped(key)
    # Inside a correlated subquery per attempt: "+ 0" keeps SQLite on the attempt's own
    # items (primary key) instead of scanning every item of the question for each attempt.
    by_attempt = changed.replace("i.question_id = :q", "i.question_id + 0 = :q")
    return [
        (
            # One message per person with a finished attempt whose score changes.
            "notify",
            "INSERT INTO outbox (key, person_id, kind, payload, created_at, tries, expires_at) "
            "SELECT :prefix || CAST(a.person_id AS TEXT), a.person_id, :kind, :payload, "
            ":now, 0, :expires FROM attempts a "
            f"WHERE a.status <> 'in_progress' AND a.id IN "
            f"(SELECT i.attempt_id FROM attempt_items i WHERE {changed}) "
            "GROUP BY a.person_id ON CONFLICT (key) DO NOTHING",
        ),
        (
            # Their scores: each flipped item adds or takes one correct answer.
            "scores",
            "UPDATE attempts SET correct_count = correct_count + ("
            f"SELECT COALESCE(SUM(CASE WHEN {grade(key)} THEN 1 ELSE -1 END), 0) "
            f"FROM attempt_items i WHERE i.attempt_id = attempts.id AND {by_attempt}) "
            "WHERE status <> 'in_progress' AND id IN "
            f"(SELECT i.attempt_id FROM attempt_items i WHERE {changed})",
        ),
        (
            # Their persons' counting attempts (storage.presses.RECOUNT's rule), written
            # only where the flag changes.
            "counting",
            f"UPDATE attempts SET counting = {COUNTING} "
            f"WHERE counting <> {COUNTING} AND person_id IN (SELECT a.person_id FROM attempts a "
            f"JOIN attempt_items i ON i.attempt_id = a.id WHERE a.status <> 'in_progress' "
            f"AND {changed})",
        ),
        (
            # The items themselves, in progress or not.
            "items",
            f"UPDATE attempt_items SET correct = {grade(key).replace('i.', '')} "
            f"WHERE {changed.replace('i.', '')}",
        ),
    ]


# The attempts in progress that drew question :q, locked in id order (PostgreSQL).
LOCK_RUNNING = (
    "SELECT a.id FROM attempts a WHERE a.status = 'in_progress' AND a.id IN "
    "(SELECT i.attempt_id FROM attempt_items i WHERE i.question_id = :q) "
    "ORDER BY a.id FOR UPDATE"
)


def _impact_sql(key: int | None, void: bool) -> str:
    if key is not None or void:
        change = flipped(None if void else key).replace("i.question_id = :q AND ", "")
    else:
        change = "1 = 0"  # a wording fix changes no grade
    finished_changed = f"a.status <> 'in_progress' AND {change}"
    return (
        "SELECT count(*) AS attempts, count(DISTINCT a.person_id) AS persons, "
        "COALESCE(SUM(CASE WHEN a.status = 'in_progress' THEN 1 ELSE 0 END), 0) AS running, "
        f"COALESCE(SUM(CASE WHEN {finished_changed} THEN 1 ELSE 0 END), 0) AS changed, "
        f"count(DISTINCT CASE WHEN {finished_changed} THEN a.person_id END) AS changed_persons "
        "FROM attempt_items i JOIN attempts a ON a.id = i.attempt_id WHERE i.question_id = :q"
    )


def _state(row: Any) -> QuestionState:
    return QuestionState(
        Question(
            row.id, row.topic, row.text, (row.option_a, row.option_b, row.option_c), row.answer
        ),
        bool(row.active),
        row.voided_at,
    )


def _fix(row: Any) -> QuestionFix:
    return QuestionFix(
        id=row.id,
        question_id=row.question_id,
        kind=row.kind,
        before=json.loads(row.before),
        after=json.loads(row.after),
        by=row.by,
        at=row.at,
        attempts_touched=row.attempts_touched,
        persons_touched=row.persons_touched,
    )


_STATE_COLUMNS = (
    QUESTIONS.c.id,
    QUESTIONS.c.topic,
    QUESTIONS.c.text,
    QUESTIONS.c.option_a,
    QUESTIONS.c.option_b,
    QUESTIONS.c.option_c,
    QUESTIONS.c.answer,
    QUESTIONS.c.active,
    QUESTIONS.c.voided_at,
)


class SqlQuestionFixes(SqlRepository):
    async def state(self, question_id: int, *, lock: bool = False) -> QuestionState | None:
        stmt = select(*_STATE_COLUMNS).where(QUESTIONS.c.id == question_id)
        if lock:
            stmt = stmt.with_for_update()
        conn = await self._connection()
        row = (await conn.execute(stmt)).first()
        return _state(row) if row else None

    async def states(self) -> list[QuestionState]:
        conn = await self._connection()
        rows = await conn.execute(select(*_STATE_COLUMNS).order_by(QUESTIONS.c.id))
        return [_state(r) for r in rows]

    async def text_owner(self, text_: str) -> int | None:
        conn = await self._connection()
        return await conn.scalar(
            select(QUESTIONS.c.id).where(QUESTIONS.c.text_key == question_key(text_))
        )

    async def impact(
        self, question_id: int, *, key: int | None = None, void: bool = False
    ) -> FixImpact:
        conn = await self._connection()
        params: dict[str, Any] = {"q": question_id}
        if key is not None and not void:
            params["k"] = str(key)
        row = (await conn.execute(text(_impact_sql(key, void)), params)).one()
        return FixImpact(
            attempts=int(row.attempts),
            persons=int(row.persons),
            in_progress=int(row.running),
            changed_attempts=int(row.changed),
            changed_persons=int(row.changed_persons),
        )

    async def set_key(self, question_id: int, old: int, new: int, now: datetime) -> bool:
        conn = await self._connection()
        result = await conn.execute(
            update(QUESTIONS)
            .where(
                QUESTIONS.c.id == question_id,
                QUESTIONS.c.answer == old,
                QUESTIONS.c.voided_at.is_(None),
            )
            .values(answer=new, updated_at=now)
        )
        return bool(result.rowcount == 1)

    async def void(self, question_id: int, now: datetime) -> bool:
        conn = await self._connection()
        result = await conn.execute(
            update(QUESTIONS)
            .where(QUESTIONS.c.id == question_id, QUESTIONS.c.voided_at.is_(None))
            .values(voided_at=now, active=False, updated_at=now)
        )
        return bool(result.rowcount == 1)

    async def reword(
        self, question_id: int, text_: str, options: tuple[str, str, str], now: datetime
    ) -> None:
        conn = await self._connection()
        a, b, c = options
        await conn.execute(
            update(QUESTIONS)
            .where(QUESTIONS.c.id == question_id)
            .values(
                text=text_,
                text_key=question_key(text_),
                option_a=a,
                option_b=b,
                option_c=c,
                updated_at=now,
            )
        )

    async def regrade(self, question_id: int, *, key: int | None, notice: FixNotice) -> Regraded:
        conn = await self._connection()
        params: dict[str, Any] = {
            "q": question_id,
            "prefix": notice.key_prefix,
            "kind": notice.kind,
            "payload": json.dumps(notice.payload, ensure_ascii=False),
            "now": notice.now,
            "expires": notice.expires_at,
        }
        if key is not None:
            params["k"] = str(key)
        if conn.dialect.name == "postgresql":
            # An answer being recorded to an attempt in progress finishes first, or waits
            # for this transaction and reads the new key: none is graded with the old one.
            # (SQLite runs one writer at a time: nothing to wait for.)
            await conn.execute(text(LOCK_RUNNING), {"q": question_id})
        counts: dict[str, int] = {}
        for name, sql in regrade_sql(key):
            stmt = text(sql)
            if name == "notify":
                stmt = stmt.bindparams(
                    bindparam("now", type_=m.UTCDateTime),
                    bindparam("expires", type_=m.UTCDateTime),
                )
            used = {k: v for k, v in params.items() if f":{k}" in sql}
            result = await conn.execute(stmt, used)
            counts[name] = int(cast(Any, result).rowcount or 0)
        # "scores" counts finished attempts whose score changed (one item each).
        return Regraded(items=counts["items"], attempts=counts["scores"], notified=counts["notify"])

    async def settle(self, question_id: int, *, key: int | None, notice: FixNotice) -> Regraded:
        conn = await self._connection()
        if conn.dialect.name != "postgresql":
            # SQLite: a press reads the key inside its write transaction, and writers run
            # one at a time, so no answer was graded with the key before the fix.
            return Regraded(0, 0, 0)
        return await self.regrade(question_id, key=key, notice=notice)

    async def record(self, fix: QuestionFix) -> int:
        conn = await self._connection()
        result = await conn.execute(
            insert(FIXES)
            .values(
                question_id=fix.question_id,
                kind=fix.kind,
                before=json.dumps(fix.before, ensure_ascii=False),
                after=json.dumps(fix.after, ensure_ascii=False),
                by=fix.by,
                at=fix.at,
                attempts_touched=fix.attempts_touched,
                persons_touched=fix.persons_touched,
            )
            .returning(FIXES.c.id)
        )
        return int(result.scalar_one())

    async def get(self, fix_id: int) -> QuestionFix | None:
        conn = await self._connection()
        row = (await conn.execute(select(FIXES).where(FIXES.c.id == fix_id))).first()
        return _fix(row) if row else None

    async def rounds_drawn(self, question_id: int, person_id: int) -> list[int]:
        conn = await self._connection()
        rows = await conn.execute(
            select(m.AttemptRow.round)
            .join(m.AttemptItemRow, m.AttemptItemRow.attempt_id == m.AttemptRow.id)
            .where(
                m.AttemptItemRow.question_id == question_id,
                m.AttemptRow.person_id == person_id,
                m.AttemptRow.status != IN_PROGRESS,
            )
            .distinct()
            .order_by(m.AttemptRow.round)
        )
        return [int(r) for r in rows.scalars()]


class SqlPending(SqlRepository):
    """Pending requests as ``contest_state`` rows under ``pending:<key>``."""

    PREFIX = "pending:"

    async def put(self, key: str, value: dict[str, Any], by: str, now: datetime) -> None:
        conn = await self._connection()
        await conn.execute(
            insert(STATE).values(
                key=self.PREFIX + key,
                value=json.dumps(value, ensure_ascii=False),
                updated_at=now,
                updated_by=by[:96],
            )
        )

    async def get(self, key: str) -> tuple[dict[str, Any], str, datetime] | None:
        conn = await self._connection()
        row = (
            await conn.execute(
                select(STATE.c.value, STATE.c.updated_by, STATE.c.updated_at).where(
                    STATE.c.key == self.PREFIX + key
                )
            )
        ).first()
        if row is None:
            return None
        return json.loads(row.value), row.updated_by or "", row.updated_at

    async def take(self, key: str) -> bool:
        conn = await self._connection()
        result = await conn.execute(delete(STATE).where(STATE.c.key == self.PREFIX + key))
        return bool(result.rowcount == 1)

    async def purge(self, prefix: str, before: datetime) -> int:
        conn = await self._connection()
        result = await conn.execute(
            delete(STATE).where(
                STATE.c.key.startswith(self.PREFIX + prefix, autoescape=True),
                STATE.c.updated_at < before,
            )
        )
        return int(result.rowcount or 0)
