"""Round 2 and prizes in the database: ``contest_state`` values (the official prediction
figure, the session code's salted hash, the confirmations' compare-and-sets), the confirmed
qualifiers and prizes, the code's tries, the hall's live view, and bulk notifications."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Table, and_, bindparam, case, func, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from contest.ports_round2 import Confirmed, HallSeat, Queued
from storage import models as m
from storage.repositories import SqlRepository

STATE = cast(Table, m.ContestStateRow.__table__)
QUALIFIERS = cast(Table, m.QualifierRow.__table__)
PRIZES = cast(Table, m.PrizeRow.__table__)
TRIES = cast(Table, m.CodeTryRow.__table__)
ATTEMPTS = cast(Table, m.AttemptRow.__table__)
PERSONS = cast(Table, m.PersonRow.__table__)
OUTBOX = cast(Table, m.OutboxRow.__table__)
QUEUE_CHUNK = 5_000  # parameter sets per execution of a bulk fan-out


class SqlRound2(SqlRepository):
    def _insert(self, dialect: str) -> Any:
        return pg_insert if dialect == "postgresql" else sqlite_insert

    async def state(self, key: str) -> tuple[str, datetime] | None:
        conn = await self._connection()
        row = (
            await conn.execute(
                select(m.ContestStateRow.value, m.ContestStateRow.updated_at).where(
                    m.ContestStateRow.key == key
                )
            )
        ).first()
        return (str(row[0]), row[1]) if row is not None else None

    async def put_state(self, key: str, value: str, now: datetime, by: str) -> None:
        conn = await self._connection()
        stmt = self._insert(conn.dialect.name)(STATE).values(
            key=key, value=value, updated_at=now, updated_by=by
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["key"],
                set_={"value": value, "updated_at": now, "updated_by": by},
            )
        )

    async def claim_state(self, key: str, value: str, now: datetime, by: str) -> bool:
        conn = await self._connection()
        stmt = self._insert(conn.dialect.name)(STATE).values(
            key=key, value=value, updated_at=now, updated_by=by
        )
        result = await conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
        return bool(result.rowcount == 1)

    async def qualifiers(self) -> list[Confirmed]:
        conn = await self._connection()
        q = QUALIFIERS.c
        rows = await conn.execute(
            select(q.person_id, q.rank, q.attempt_id, q.confirmed_at, q.confirmed_by).order_by(
                q.rank, q.person_id
            )
        )
        return [Confirmed(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def is_qualifier(self, person_id: int) -> bool:
        conn = await self._connection()
        found = await conn.scalar(
            select(QUALIFIERS.c.person_id).where(QUALIFIERS.c.person_id == person_id)
        )
        return found is not None

    async def add_qualifiers(
        self, rows: Sequence[tuple[int, int, int]], now: datetime, by: str
    ) -> None:
        if not rows:
            return
        conn = await self._connection()
        await conn.execute(
            QUALIFIERS.insert(),
            [
                {
                    "person_id": person,
                    "rank": rank,
                    "attempt_id": attempt,
                    "confirmed_at": now,
                    "confirmed_by": by,
                }
                for person, rank, attempt in rows
            ],
        )

    async def prizes(self) -> list[Confirmed]:
        conn = await self._connection()
        p = PRIZES.c
        rows = await conn.execute(
            select(p.person_id, p.rank, p.attempt_id, p.confirmed_at, p.confirmed_by, p.prize)
        )
        return [Confirmed(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def add_prizes(
        self, rows: Sequence[tuple[int, str, int, int]], now: datetime, by: str
    ) -> None:
        if not rows:
            return
        conn = await self._connection()
        await conn.execute(
            PRIZES.insert(),
            [
                {
                    "person_id": person,
                    "prize": prize,
                    "rank": rank,
                    "attempt_id": attempt,
                    "confirmed_at": now,
                    "confirmed_by": by,
                }
                for person, prize, rank, attempt in rows
            ],
        )

    async def failed_tries(self, person_id: int, since: datetime) -> list[datetime]:
        conn = await self._connection()
        t = TRIES.c
        rows = await conn.execute(
            select(t.tried_at)
            .where(t.person_id == person_id, t.tried_at > since, t.ok.is_(False))
            .order_by(t.tried_at)
        )
        return [r[0] for r in rows]

    async def record_try(self, person_id: int, now: datetime, ok: bool) -> None:
        conn = await self._connection()
        await conn.execute(TRIES.insert().values(person_id=person_id, tried_at=now, ok=ok))

    async def code_passed(self, person_id: int, since: datetime) -> bool:
        conn = await self._connection()
        t = TRIES.c
        found = await conn.scalar(
            select(t.id)
            .where(t.person_id == person_id, t.tried_at >= since, t.ok.is_(True))
            .limit(1)
        )
        return found is not None

    async def seen_questions(self, person_id: int, round: int) -> set[int]:
        conn = await self._connection()
        table = cast(Table, m.AttemptItemRow.__table__)
        a = ATTEMPTS.c
        rows = await conn.execute(
            select(table.c.question_id)
            .select_from(table.join(ATTEMPTS, a.id == table.c.attempt_id))
            .where(a.person_id == person_id, a.round == round)
        )
        return {int(r[0]) for r in rows}

    async def open_attempts(self, round: int) -> int:
        conn = await self._connection()
        a = ATTEMPTS.c
        count = await conn.scalar(
            select(func.count()).where(a.round == round, a.status == "in_progress")
        )
        return int(count or 0)

    async def ranking_inputs(self, round: int, predictions: bool) -> str:
        # Sums of each finished attempt's score and counting flag, weighted by two
        # functions of its id: a regrade (+1 here, -1 there), a recount, a lock or an
        # unlock changes them. A finished attempt's time and status do not change (the
        # callers check that none is in progress). One scan of the round's attempts, and
        # of the locked persons, aggregated in the database (~0.1 s for 200,000 attempts).
        conn = await self._connection()
        a, p = ATTEMPTS.c, PERSONS.c
        ident = sql_cast(a.id, BigInteger)
        value = a.correct_count * 2 + case((a.counting.is_(True), 1), else_=0)
        columns = [
            func.count(),
            func.sum(ident * value),
            func.sum(((ident * ident + 7) % 1_000_003) * value),
        ]
        if predictions:
            columns.append(func.sum(ident * func.coalesce(a.prediction, -1)))
        attempts = (
            await conn.execute(select(*columns).where(a.round == round, a.status != "in_progress"))
        ).one()
        person = sql_cast(p.id, BigInteger)
        locked = (
            await conn.execute(
                select(
                    func.count(),
                    func.sum(person),
                    func.sum((person * person + 7) % 1_000_003),
                ).where(p.locked_at.is_not(None))
            )
        ).one()
        return "|".join(str(v) for v in (*attempts, *locked))

    async def hall(self) -> list[HallSeat]:
        conn = await self._connection()
        q, p, a, t = QUALIFIERS.c, PERSONS.c, ATTEMPTS.c, TRIES.c
        code_ok = (
            select(t.person_id, func.max(t.tried_at).label("at"))
            .where(t.ok.is_(True))
            .group_by(t.person_id)
            .subquery()
        )
        rows = await conn.execute(
            select(
                q.person_id,
                p.full_name,
                q.rank,
                code_ok.c.at,
                a.status,
                a.deadline_at,
                a.correct_count,
                a.question_count,
                a.duration_seconds,
            )
            .join(PERSONS, p.id == q.person_id)
            .outerjoin(code_ok, code_ok.c.person_id == q.person_id)
            .outerjoin(ATTEMPTS, and_(a.person_id == q.person_id, a.round == 2))
            .order_by(q.rank, q.person_id, a.number)
        )
        seats: dict[int, HallSeat] = {}
        for r in rows:
            finished = r.status is not None and r.status != "in_progress"
            seats[r.person_id] = HallSeat(  # the last attempt of each person
                person_id=r.person_id,
                full_name=r.full_name,
                rank=r.rank,
                code_ok_at=r.at if r.at is not None else None,
                status=r.status,
                deadline_at=r.deadline_at if r.deadline_at is not None else None,
                correct=r.correct_count if finished else None,
                total=r.question_count if r.status is not None else None,
                duration_seconds=r.duration_seconds if finished else None,
            )
        return list(seats.values())

    async def queue(
        self, rows: Sequence[Queued], now: datetime, expires_at: datetime | None
    ) -> int:
        if not rows:
            return 0
        conn = await self._connection()
        stmt = (
            self._insert(conn.dialect.name)(OUTBOX)
            .values(
                key=bindparam("k"),
                person_id=bindparam("p"),
                kind=bindparam("kind"),
                payload=bindparam("payload"),
                created_at=bindparam("now", type_=m.UTCDateTime),
                tries=0,
                expires_at=bindparam("expires", type_=m.UTCDateTime),
            )
            .on_conflict_do_nothing(index_elements=["key"])
        )
        queued = 0
        for start in range(0, len(rows), QUEUE_CHUNK):  # one statement, many parameter sets
            chunk = rows[start : start + QUEUE_CHUNK]
            result = await conn.execute(
                stmt,
                [
                    {
                        "k": row.key,
                        "p": row.person_id,
                        "kind": row.kind,
                        "payload": json.dumps(row.payload, ensure_ascii=False),
                        "now": now,
                        "expires": expires_at,
                    }
                    for row in chunk
                ],
            )
            count = result.rowcount
            queued += count if count is not None and count >= 0 else len(chunk)
        return queued
