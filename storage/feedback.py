"""Contestants' feedback (``/gopy``) and the organisers' answers: the feedback table."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update

from contest.ports import FeedbackItem
from storage import models as m
from storage.repositories import SqlRepository, _rowcount

FEEDBACK = cast(Table, m.FeedbackRow.__table__)
OPEN, ANSWERED, CLOSED = "open", "answered", "closed"


def _item(row: Any) -> FeedbackItem:
    return FeedbackItem(
        id=row.id,
        person_id=row.person_id,
        text=row.text,
        created_at=row.created_at,
        status=row.status,
        attempt_id=row.attempt_id,
        question_id=row.question_id,
        position=row.position,
        answer=row.answer,
        answered_by=row.answered_by,
        answered_at=row.answered_at,
        closed_at=row.closed_at,
    )


class SqlFeedback(SqlRepository):
    async def add(
        self,
        *,
        person_id: int,
        text: str,
        now: datetime,
        attempt_id: int | None = None,
        question_id: int | None = None,
        position: int | None = None,
    ) -> FeedbackItem:
        conn = await self._connection()
        values = {
            "person_id": person_id,
            "text": text,
            "created_at": now,
            "status": OPEN,
            "attempt_id": attempt_id,
            "question_id": question_id,
            "position": position,
        }
        result = await conn.execute(insert(FEEDBACK).values(**values))
        (feedback_id,) = result.inserted_primary_key or (None,)
        assert feedback_id is not None
        return FeedbackItem(
            id=int(feedback_id),
            person_id=person_id,
            text=text,
            created_at=now,
            status=OPEN,
            attempt_id=attempt_id,
            question_id=question_id,
            position=position,
        )

    async def get(self, feedback_id: int) -> FeedbackItem | None:
        conn = await self._connection()
        row = (await conn.execute(select(FEEDBACK).where(FEEDBACK.c.id == feedback_id))).first()
        return _item(row) if row else None

    async def sent_since(self, person_id: int, since: datetime) -> list[datetime]:
        conn = await self._connection()
        rows = await conn.execute(
            select(FEEDBACK.c.created_at)
            .where(FEEDBACK.c.person_id == person_id, FEEDBACK.c.created_at > since)
            .order_by(FEEDBACK.c.created_at)
        )
        return [row.created_at for row in rows]

    async def open_page(self, offset: int, limit: int, *, newest_first: bool) -> list[FeedbackItem]:
        conn = await self._connection()
        order = (
            (FEEDBACK.c.created_at.desc(), FEEDBACK.c.id.desc())
            if newest_first
            else (FEEDBACK.c.created_at, FEEDBACK.c.id)
        )
        rows = await conn.execute(
            select(FEEDBACK)
            .where(FEEDBACK.c.status == OPEN)
            .order_by(*order)
            .offset(offset)
            .limit(limit)
        )
        return [_item(row) for row in rows]

    async def count_open(self) -> int:
        conn = await self._connection()
        total = await conn.scalar(
            select(func.count()).select_from(FEEDBACK).where(FEEDBACK.c.status == OPEN)
        )
        return int(total or 0)

    async def answer(self, feedback_id: int, answer: str, by: str, now: datetime) -> bool:
        conn = await self._connection()
        result = await conn.execute(
            update(FEEDBACK)
            .where(FEEDBACK.c.id == feedback_id, FEEDBACK.c.status == OPEN)
            .values(
                status=ANSWERED, answer=answer, answered_by=by[:96], answered_at=now, closed_at=now
            )
        )
        return _rowcount(result) == 1

    async def close(self, feedback_id: int, now: datetime) -> bool:
        conn = await self._connection()
        result = await conn.execute(
            update(FEEDBACK)
            .where(FEEDBACK.c.id == feedback_id, FEEDBACK.c.status == OPEN)
            .values(status=CLOSED, closed_at=now)
        )
        return _rowcount(result) == 1
