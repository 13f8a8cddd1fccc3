"""Aggregates for the organisers' console: units' participation and the totals, each in one
query over the whole contest (100,000 contestants: well under a second)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from contest.model import Unit, UnitKind
from contest.participation import Totals, UnitCounts
from storage.repositories import SqlRepository

# Civil servants of each unit (locked ones left out) and their counting attempts of the
# round: one row per person with a finished attempt (attempts.counting, kept by every
# finish), so participants and leaders are plain counts.
_UNIT_COUNTS = text(
    """
    SELECT u.id, u.code, u.name, u.kind, u.staff_count,
           COUNT(p.id) AS registered,
           COUNT(a.id) AS participants,
           COUNT(CASE WHEN a.id IS NOT NULL AND p.position = 'leader' THEN 1 END) AS leaders,
           COALESCE(SUM(CASE WHEN a.id IS NOT NULL AND a.question_count > 0
                        THEN a.correct_count * 1.0 / a.question_count END), 0) AS best_sum
    FROM units u
    LEFT JOIN persons p
           ON p.unit_id = u.id AND p."group" = 'civil_servant' AND p.locked_at IS NULL
    LEFT JOIN attempts a
           ON a.person_id = p.id AND a.round = :round AND a.counting
    GROUP BY u.id, u.code, u.name, u.kind, u.staff_count
    ORDER BY u.id
    """
)
_TOTALS = text(
    """
    SELECT p."group" AS grp, u.kind AS kind,
           COUNT(*) AS registered,
           COUNT(a.id) AS took_part
    FROM persons p
    LEFT JOIN units u ON u.id = p.unit_id
    LEFT JOIN attempts a ON a.person_id = p.id AND a.round = :round AND a.counting
    WHERE p.locked_at IS NULL
    GROUP BY p."group", u.kind
    """
)
_ATTEMPTS = text(
    """
    SELECT COUNT(CASE WHEN status <> 'in_progress' THEN 1 END) AS finished,
           COUNT(CASE WHEN status = 'in_progress' THEN 1 END) AS open
    FROM attempts WHERE round = :round
    """
)


class SqlStats(SqlRepository):
    async def unit_counts(self, round: int) -> list[UnitCounts]:
        conn = await self._connection()
        rows = await conn.execute(_UNIT_COUNTS, {"round": round})
        return [
            UnitCounts(
                Unit(r.id, r.code, r.name, UnitKind(r.kind), r.staff_count),
                int(r.registered),
                int(r.participants),
                int(r.leaders),
                float(r.best_sum or 0.0),
            )
            for r in rows
        ]

    async def totals(self, round: int) -> Totals:
        conn = await self._connection()
        groups: dict[tuple[str, Any], tuple[int, int]] = {
            (r.grp, r.kind): (int(r.registered), int(r.took_part))
            for r in await conn.execute(_TOTALS, {"round": round})
        }
        attempts = (await conn.execute(_ATTEMPTS, {"round": round})).one()
        by_kind: dict[UnitKind, tuple[int, int]] = {}
        civil_servants = citizens = took_part = 0
        for (group, kind), (registered, took) in groups.items():
            took_part += took
            if group == "citizen":
                citizens += registered
                continue
            civil_servants += registered
            if kind is not None:
                current = by_kind.get(UnitKind(kind), (0, 0))
                by_kind[UnitKind(kind)] = (current[0] + registered, current[1] + took)
        return Totals(
            registered=civil_servants + citizens,
            civil_servants=civil_servants,
            citizens=citizens,
            took_part=took_part,
            attempts=int(attempts.finished or 0),
            in_progress=int(attempts.open or 0),
            by_kind=by_kind,
        )
