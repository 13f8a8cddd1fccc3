"""The contest at a glance for the organisers: totals, and every unit's participation
against the plan's quota (worst first); a focal person sees their own unit only."""

from __future__ import annotations

from contest.participation import Totals, UnitParticipation, evaluate, worst_first
from contest.usecases.base import UseCase


class Stats(UseCase):
    async def participation(
        self, round_number: int = 1, *, unit_id: int | None = None
    ) -> list[UnitParticipation]:
        """Every unit's participation, worst first (only ``unit_id``'s, if given)."""
        async with self.uow(write=False) as uow:
            counts = await uow.stats.unit_counts(round_number)
        rows = [evaluate(c, self.rules.quota) for c in counts]
        if unit_id is not None:
            rows = [r for r in rows if r.unit.id == unit_id]
        return worst_first(rows)

    async def totals(self, round_number: int = 1) -> Totals:
        async with self.uow(write=False) as uow:
            return await uow.stats.totals(round_number)
