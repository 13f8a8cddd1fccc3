"""Results: a person's attempts and the one that counts, the ranking, and who qualifies
for round 2."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from contest.errors import ContestError
from contest.model import Account, AttemptResult
from contest.ports import PersonLabel, Standing, UnitOfWork
from contest.scoring import TIME_ONLY, Qualification, Ranked, TieRule, best_result, qualify, rank
from contest.usecases.base import UseCase
from contest.usecases.predictions import tie_rule_in

LEADERBOARD_PAGE_SIZE = 15


@dataclass(frozen=True)
class ResultsView:
    results: list[AttemptResult]
    best: AttemptResult | None
    in_progress: bool
    attempts_allowed: int
    predicting: bool = False  # the tie rule uses the prediction question


@dataclass(frozen=True)
class Placed:
    """A leaderboard row; ``tied`` when another person shares its rank."""

    standing: Standing
    tied: bool


@dataclass(frozen=True)
class Leaderboard:
    round: int
    rows: list[Placed]
    page: int
    pages: int
    total: int  # persons ranked
    rule: TieRule = field(default=TIME_ONLY, compare=False)  # the rule it is ranked by


class Results(UseCase):
    async def person_results(self, account: Account, round_number: int = 1) -> ResultsView:
        """Each finished attempt of the person in a round, and the one that counts."""
        rules = self.rules.round1 if round_number == 1 else self.rules.round2.round
        async with self.uow(write=False) as uow:
            person = await uow.persons.by_account(account)
            if person is None:
                raise ContestError("not_registered")
            results = await uow.attempts.results_for(person.id, round_number)
            current = await uow.attempts.in_progress(person.id, round_number)
            rule = await tie_rule_in(uow, self.rules, round_number)
            return ResultsView(
                sorted(results, key=lambda r: r.number),
                best_result(results, rule),
                current is not None,
                rules.attempts,
                predicting=self.rules.uses_prediction,
            )

    async def tie_rule(self, round_number: int = 1) -> TieRule:
        """The tie rule in force for a round (the contest file's, with the official figure
        once an organiser entered it)."""
        async with self.uow(write=False) as uow:
            return await tie_rule_in(uow, self.rules, round_number)

    async def ranking(self, round_number: int = 1) -> list[Ranked]:
        """Every person's best attempt of a round by the tie rule in force, ranked (equal
        scores share a rank; locked persons left out). Under the time-only rule the
        counting attempts are read; under another, every finished attempt (the rule may
        pick another of a person's attempts)."""
        async with self.uow(write=False) as uow:
            rule = await tie_rule_in(uow, self.rules, round_number)
            if rule == TIME_ONLY:
                return rank(await uow.attempts.best_results(round_number))
            return rank(await uow.attempts.ranking_results(round_number), rule)

    async def round2_qualifiers(self) -> Qualification:
        """The top of round 1 with at least the required share correct, ties at the cut."""
        round2 = self.rules.round2
        return qualify(await self.ranking(1), round2.qualifiers, round2.min_ratio)

    async def leaderboard(
        self,
        round_number: int = 1,
        page: int = 0,
        size: int = LEADERBOARD_PAGE_SIZE,
        rule: TieRule | None = None,
    ) -> Leaderboard:
        """A page of the ranking by the tie rule in force, locked persons left out. A rank
        is shown as tied when a neighbour, on this page or just beyond it, shares it.

        Under the time-only rule the database ranks and only the page's rows are read
        (100,000 contestants: well under a second). Another rule ranks every counting
        attempt in memory with ``contest.scoring.rank`` (about as long as the round-2
        qualification takes). ``rule``: the tie rule in force unless given."""
        async with self.uow(write=False) as uow:
            if rule is None:
                rule = await tie_rule_in(uow, self.rules, round_number)
            if rule != TIME_ONLY:
                return await self._leaderboard_in_memory(uow, round_number, page, size, rule)
            total = await uow.stats.ranked_count(round_number)
            pages = max(1, -(-total // size))
            page = min(max(page, 0), pages - 1)
            first, last = page * size + 1, (page + 1) * size
            # One row either side of the page: is its first (last) rank shared beyond it?
            rows = await uow.stats.standings(round_number, max(first - 1, 1), last + 1)
        return Leaderboard(round_number, _placed(rows, first, last), page, pages, total, rule)

    async def _leaderboard_in_memory(
        self, uow: UnitOfWork, round_number: int, page: int, size: int, rule: TieRule
    ) -> Leaderboard:
        ranked = rank(await uow.attempts.ranking_results(round_number), rule)
        total = len(ranked)
        pages = max(1, -(-total // size))
        page = min(max(page, 0), pages - 1)
        first, last = page * size + 1, (page + 1) * size
        window = ranked[max(first - 2, 0) : last + 1]
        labels = await uow.stats.labels([r.result.person_id for r in window])
        rows = []
        for position, (place, result) in enumerate(window, start=max(first - 1, 1)):
            label = labels.get(result.person_id, PersonLabel("", None, False))
            rows.append(
                Standing(
                    position=position,
                    rank=place,
                    person_id=result.person_id,
                    full_name=label.full_name,
                    place=label.place,
                    citizen=label.citizen,
                    correct=result.correct,
                    total=result.total,
                    duration_seconds=result.duration_seconds,
                    finished_at=result.finished_at,
                    prediction=result.prediction,
                )
            )
        return Leaderboard(round_number, _placed(rows, first, last), page, pages, total, rule)


def _placed(rows: Sequence[Standing], first: int, last: int) -> list[Placed]:
    """The rows at positions ``first``..``last``, each tied or not with its neighbours
    (``rows`` may hold one more row on either side)."""
    placed = []
    for index, row in enumerate(rows):
        if not first <= row.position <= last:
            continue
        before = rows[index - 1] if index > 0 else None
        after = rows[index + 1] if index + 1 < len(rows) else None
        tied = any(n is not None and n.rank == row.rank for n in (before, after))
        placed.append(Placed(row, tied))
    return placed
