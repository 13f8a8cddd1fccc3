"""Aggregates for the organisers' console: units' participation and the totals, each in one
query over the whole contest (100,000 contestants: well under a second); a unit's
colleagues; the leaderboard, ranked in SQL; locking a person out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, TextualSelect, bindparam, text, update

from contest.model import Unit, UnitKind
from contest.participation import Totals, UnitCounts
from contest.ports import Colleague, PersonLabel, Standing
from storage import models as m
from storage.models import UTCDateTime
from storage.repositories import SqlRepository

# Both aggregates read every person and every counting attempt once, grouped by (group,
# unit); the units' rows and the totals are put together from those few groups. Grouping by
# ``unit_id + 0`` keeps SQLite from walking ix_persons_unit_id (a table lookup per person,
# about 8 times slower than a plain scan); PostgreSQL plans it the same either way.
# Locked persons are left out of everything.
_REGISTERED = text(
    """
    SELECT "group" AS grp, unit_id + 0 AS unit_id, COUNT(*) AS registered
    FROM persons
    WHERE locked_at IS NULL
    GROUP BY "group", unit_id + 0
    """
)
# Participants: one counting attempt per person with a finished attempt in the round
# (attempts.counting, kept by every finish), so participants and leaders are plain counts.
_TOOK_PART = text(
    """
    SELECT p."group" AS grp, p.unit_id + 0 AS unit_id,
           COUNT(*) AS participants,
           COUNT(CASE WHEN p.position = 'leader' THEN 1 END) AS leaders,
           COALESCE(SUM(CASE WHEN a.question_count > 0
                        THEN a.correct_count * 1.0 / a.question_count END), 0) AS best_sum
    FROM attempts a
    JOIN persons p ON p.id = a.person_id
    WHERE a.round = :round AND a.counting AND p.locked_at IS NULL
    GROUP BY p."group", p.unit_id + 0
    """
)
_UNITS = text("SELECT id, code, name, kind, staff_count FROM units ORDER BY id")
# Attempts of the round: all of them from the index on (round, counting), the open ones
# from the index on (status, deadline_at) (``+round`` keeps SQLite off the other index).
_ATTEMPTS = text(
    """
    SELECT (SELECT COUNT(*) FROM attempts WHERE round = :round) AS started,
           (SELECT COUNT(*) FROM attempts
            WHERE status = 'in_progress' AND +round = :round) AS open
    """
)

_COLLEAGUES = text(
    """
    SELECT p.id, p.full_name, p.position,
           COUNT(CASE WHEN a.status <> 'in_progress' THEN 1 END) AS finished,
           COUNT(CASE WHEN a.status = 'in_progress' THEN 1 END) AS open,
           COUNT(CASE WHEN a.counting THEN 1 END) AS counting,
           MAX(CASE WHEN a.counting AND a.question_count > 0
               THEN a.correct_count * 1.0 / a.question_count END) AS best
    FROM persons p
    LEFT JOIN attempts a ON a.person_id = p.id AND a.round = :round
    WHERE p.unit_id = :unit_id AND p."group" = 'civil_servant' AND p.locked_at IS NULL
    GROUP BY p.id, p.full_name, p.position
    """
)
# Locked persons are few: their ids once, then a hashed lookup per counting attempt.
_NOT_LOCKED = "a.person_id NOT IN (SELECT id FROM persons WHERE locked_at IS NOT NULL)"
# Counting attempts (from the index alone) less those of locked persons (few: found by a
# scan of the persons, then their attempts by person; CROSS JOIN fixes SQLite's order).
_RANKED_COUNT = text(
    """
    SELECT (SELECT COUNT(*) FROM attempts WHERE round = :round AND counting)
         - (SELECT COUNT(*) FROM persons p CROSS JOIN attempts a
            WHERE a.person_id = p.id AND +a.round = :round AND a.counting
              AND p.locked_at IS NOT NULL)
    """
)
# The tie rule of contest.scoring (result_key and rank), in SQL: one row per person (the
# counting attempt, flagged by every finish), ordered by most correct, shorter time, earlier
# submission. Only a page is sorted out (ORDER BY … LIMIT keeps the rows it needs) and
# joined to names and places; the rank of the page's first row is one more than the rows
# strictly ahead of it (more correct, or as many in a shorter time), the next ones follow
# as contest.scoring.rank gives them (equal correct and time share the rank).
# tests/test_console_stats.py checks the result against contest.scoring.rank on both
# engines: change both together.
_ORDER = "a.correct_count DESC, COALESCE(a.duration_seconds, 0), a.finished_at, a.id"
_REVERSED = "a.correct_count, COALESCE(a.duration_seconds, 0) DESC, a.finished_at DESC, a.id DESC"


def _page(order: str) -> TextualSelect:
    """The rows of a page in ``order`` (pages past the middle are read from the end: an
    ORDER BY … LIMIT keeps only the rows it needs)."""
    return text(
        f"""
        SELECT r.id, r.person_id, r.correct_count, r.question_count, r.duration,
               r.finished_at, p.full_name, p."group" AS grp, COALESCE(u.name, w.name) AS place
        FROM (
            SELECT a.id, a.person_id, a.correct_count, a.question_count,
                   COALESCE(a.duration_seconds, 0) AS duration, a.finished_at
            FROM attempts a
            WHERE a.round = :round AND a.counting AND {_NOT_LOCKED}
            ORDER BY {order}
            LIMIT :limit OFFSET :offset
        ) r
        JOIN persons p ON p.id = r.person_id
        LEFT JOIN units u ON u.id = p.unit_id
        LEFT JOIN units w ON w.id = p.ward_id
        """
    ).columns(finished_at=UTCDateTime())


_PAGE = _page(_ORDER)
_PAGE_FROM_END = _page(_REVERSED)
_AHEAD = text(
    f"""
    SELECT COUNT(*) FROM attempts a
    WHERE a.round = :round AND a.counting AND {_NOT_LOCKED}
      AND (a.correct_count > :correct
           OR (a.correct_count = :correct AND COALESCE(a.duration_seconds, 0) < :duration))
    """
)
_LABELS = text(
    """
    SELECT p.id, p.full_name, p."group" AS grp, COALESCE(u.name, w.name) AS place
    FROM persons p
    LEFT JOIN units u ON u.id = p.unit_id
    LEFT JOIN units w ON w.id = p.ward_id
    WHERE p.id IN :ids
    """
).bindparams(bindparam("ids", expanding=True))
PERSONS = cast(Table, m.PersonRow.__table__)


@dataclass
class _Group:
    """The persons of one (group, unit) and those of them taking part."""

    registered: int = 0
    participants: int = 0
    leaders: int = 0
    best_sum: float = 0.0


class SqlStats(SqlRepository):
    async def _groups(self, round: int) -> dict[tuple[str, int | None], _Group]:
        conn = await self._connection()
        groups: dict[tuple[str, int | None], _Group] = {}
        for r in await conn.execute(_REGISTERED):
            groups[(r.grp, r.unit_id)] = _Group(registered=int(r.registered))
        for r in await conn.execute(_TOOK_PART, {"round": round}):
            group = groups.setdefault((r.grp, r.unit_id), _Group())
            group.participants = int(r.participants)
            group.leaders = int(r.leaders)
            group.best_sum = float(r.best_sum or 0.0)
        return groups

    async def _units(self) -> list[Unit]:
        conn = await self._connection()
        rows = await conn.execute(_UNITS)
        return [Unit(r.id, r.code, r.name, UnitKind(r.kind), r.staff_count) for r in rows]

    async def unit_counts(self, round: int) -> list[UnitCounts]:
        return (await self.participation(round))[0]

    async def totals(self, round: int) -> Totals:
        return (await self.participation(round))[1]

    async def participation(self, round: int) -> tuple[list[UnitCounts], Totals]:
        groups = await self._groups(round)
        units = await self._units()
        counts = []
        for unit in units:
            group = groups.get(("civil_servant", unit.id), _Group())
            counts.append(
                UnitCounts(
                    unit, group.registered, group.participants, group.leaders, group.best_sum
                )
            )
        kinds = {unit.id: unit.kind for unit in units}
        by_kind: dict[UnitKind, tuple[int, int]] = {}
        civil_servants = citizens = took_part = 0
        for (grp, unit_id), group in groups.items():
            took_part += group.participants
            if grp == "citizen":
                citizens += group.registered
                continue
            civil_servants += group.registered
            kind = kinds.get(unit_id) if unit_id is not None else None
            if kind is not None:
                current = by_kind.get(kind, (0, 0))
                by_kind[kind] = (current[0] + group.registered, current[1] + group.participants)
        conn = await self._connection()
        attempts = (await conn.execute(_ATTEMPTS, {"round": round})).one()
        started, open_now = int(attempts.started or 0), int(attempts.open or 0)
        totals = Totals(
            registered=civil_servants + citizens,
            civil_servants=civil_servants,
            citizens=citizens,
            took_part=took_part,
            attempts=started - open_now,
            in_progress=open_now,
            by_kind=by_kind,
        )
        return counts, totals

    async def colleagues(self, unit_id: int, round: int) -> list[Colleague]:
        conn = await self._connection()
        rows = await conn.execute(_COLLEAGUES, {"unit_id": unit_id, "round": round})
        return [
            Colleague(
                person_id=r.id,
                full_name=r.full_name,
                leader=r.position == "leader",
                finished=int(r.finished),
                in_progress=bool(r.open),
                took_part=bool(r.counting),
                best=float(r.best) if r.best is not None else None,
            )
            for r in rows
        ]

    async def ranked_count(self, round: int) -> int:
        conn = await self._connection()
        return int(await conn.scalar(_RANKED_COUNT, {"round": round}) or 0)

    async def standings(self, round: int, first: int, last: int) -> list[Standing]:
        conn = await self._connection()
        if first <= 1:
            total = None
        else:
            total = int(await conn.scalar(_RANKED_COUNT, {"round": round}) or 0)
            last = min(last, total)
        if last < first:
            return []
        if total is not None and first - 1 > total // 2:
            params = {"round": round, "limit": last - first + 1, "offset": total - last}
            found = (await conn.execute(_PAGE_FROM_END, params)).all()
        else:
            params = {"round": round, "limit": last - first + 1, "offset": first - 1}
            found = (await conn.execute(_PAGE, params)).all()
        rows = sorted(found, key=lambda r: (-r.correct_count, r.duration, r.finished_at, r.id))
        if not rows:
            return []
        top = rows[0]
        ahead = 0
        if first > 1:  # nobody is ahead of the first row
            ahead = await conn.scalar(
                _AHEAD, {"round": round, "correct": top.correct_count, "duration": top.duration}
            )
        standings: list[Standing] = []
        rank = int(ahead or 0) + 1
        previous: tuple[int, float] | None = None
        for position, r in enumerate(rows, start=first):
            score = (int(r.correct_count), float(r.duration))
            if previous is not None and score != previous:
                rank = position
            previous = score
            standings.append(
                Standing(
                    position=position,
                    rank=rank,
                    person_id=r.person_id,
                    full_name=r.full_name,
                    place=r.place,
                    citizen=r.grp == "citizen",
                    correct=score[0],
                    total=int(r.question_count),
                    duration_seconds=score[1],
                    finished_at=r.finished_at,
                )
            )
        return standings

    async def labels(self, person_ids: Sequence[int]) -> dict[int, PersonLabel]:
        if not person_ids:
            return {}
        conn = await self._connection()
        rows = await conn.execute(_LABELS, {"ids": list(person_ids)})
        return {r.id: PersonLabel(r.full_name, r.place, r.grp == "citizen") for r in rows}


class SqlLocks(SqlRepository):
    async def lock(self, person_id: int, when: datetime, reason: str) -> bool:
        conn = await self._connection()
        result = await conn.execute(
            update(PERSONS)
            .where(PERSONS.c.id == person_id, PERSONS.c.locked_at.is_(None))
            .values(locked_at=when, lock_reason=reason)
        )
        return result.rowcount == 1

    async def unlock(self, person_id: int) -> bool:
        conn = await self._connection()
        result = await conn.execute(
            update(PERSONS)
            .where(PERSONS.c.id == person_id, PERSONS.c.locked_at.is_not(None))
            .values(locked_at=None, lock_reason=None)
        )
        return result.rowcount == 1
