"""The contest at a glance for the organisers: totals, and every unit's participation
against the plan's quota (worst first); a focal person sees their own unit only, with the
colleagues who registered and have or have not taken the exam yet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contest.errors import ContestError
from contest.model import Role, UnitKind
from contest.participation import (
    Totals,
    UnitCounts,
    UnitParticipation,
    evaluate,
    worst_first,
)
from contest.ports import Colleague, UnitOfWork
from contest.text import fold
from contest.usecases.base import UseCase
from contest.usecases.staff import Actor

STATS_PAGE_SIZE = 8  # units per page: a page stays far below a message's 4,096 characters


@dataclass(frozen=True)
class Overview:
    """One page of the per-unit table (of one kind of unit, or all), with the totals."""

    totals: Totals
    units: list[UnitParticipation]  # this page's, worst first
    page: int
    pages: int
    kind: UnitKind | None  # the view: one kind of unit, or None for all
    count: int  # units in the view
    met: int  # of them, meeting the quota
    offset: int  # the first unit's index in the view (0-based)
    at: datetime


@dataclass(frozen=True)
class UnitReport:
    """One unit's participation, and who of its registered staff took part or not yet."""

    row: UnitParticipation
    waiting: list[Colleague]  # registered, no finished attempt yet (by name)
    took_part: list[Colleague]  # with a finished attempt (by name)
    at: datetime


class Stats(UseCase):
    async def participation(
        self, round_number: int = 1, *, unit_id: int | None = None
    ) -> list[UnitParticipation]:
        """Every unit's participation, worst first (only ``unit_id``'s, if given)."""
        async with self.uow(write=False) as uow:
            return await self._participation(uow, round_number, unit_id)

    async def _participation(
        self, uow: UnitOfWork, round_number: int, unit_id: int | None = None
    ) -> list[UnitParticipation]:
        counts = await uow.stats.unit_counts(round_number)
        rows = [evaluate(c, self.rules.quota) for c in counts]
        if unit_id is not None:
            rows = [r for r in rows if r.unit.id == unit_id]
        return worst_first(rows)

    async def totals(self, round_number: int = 1) -> Totals:
        async with self.uow(write=False) as uow:
            return await uow.stats.totals(round_number)

    async def overview(
        self,
        kind: UnitKind | None = None,
        page: int = 0,
        size: int = STATS_PAGE_SIZE,
        round_number: int = 1,
    ) -> Overview:
        """A page of the per-unit table, worst units first (of one kind, if given), and
        the totals; a page past the end shows the last one."""
        async with self.uow(write=False) as uow:
            counts, totals = await uow.stats.participation(round_number)
        rows = worst_first([evaluate(c, self.rules.quota) for c in counts])
        if kind is not None:
            rows = [r for r in rows if r.unit.kind is kind]
        pages = max(1, -(-len(rows) // size))
        page = min(max(page, 0), pages - 1)
        return Overview(
            totals=totals,
            units=rows[page * size : (page + 1) * size],
            page=page,
            pages=pages,
            kind=kind,
            count=len(rows),
            met=sum(1 for r in rows if r.meets_quota),
            offset=page * size,
            at=self.clock.now(),
        )

    async def unit_report(
        self,
        actor: Actor,
        *,
        unit_id: int | None = None,
        code: str | None = None,
        round_number: int = 1,
    ) -> UnitReport:
        """One unit's participation and its colleagues' lists. A focal person may see their
        own unit only (``foreign_unit`` otherwise, whatever the request says); an organiser
        any unit, by id or code; without either, the actor's own unit."""
        async with self.uow(write=False) as uow:
            if code is not None:
                unit = await uow.units.by_code(code.strip().upper())
                if unit is None:
                    raise ContestError("unit_code_unknown", unit_code=code[:40])
                unit_id = unit.id
            if unit_id is None:
                unit_id = actor.unit_id
            if unit_id is None:
                raise ContestError("no_focal_unit")
            if actor.role < Role.ORGANISER and unit_id != actor.unit_id:
                raise ContestError("foreign_unit", unit_id=unit_id)
            unit = await uow.units.get(unit_id)
            if unit is None:
                raise ContestError("unit_gone")
            people = await uow.stats.colleagues(unit_id, round_number)
        # The unit's figures from its own people (as unit_counts counts them), not from a
        # reading of the whole contest.
        took_part = [c for c in people if c.took_part]
        counts = UnitCounts(
            unit,
            registered=len(people),
            participants=len(took_part),
            leaders=sum(1 for c in took_part if c.leader),
            best_sum=sum(c.best or 0.0 for c in took_part),
        )
        people.sort(key=lambda c: (fold(c.full_name), c.person_id))
        return UnitReport(
            row=evaluate(counts, self.rules.quota),
            waiting=[c for c in people if not c.took_part],
            took_part=[c for c in people if c.took_part],
            at=self.clock.now(),
        )
