"""Results: a person's attempts and the one that counts, the ranking, and who qualifies
for round 2."""

from __future__ import annotations

from dataclasses import dataclass

from contest.errors import ContestError
from contest.model import Account, AttemptResult
from contest.scoring import Qualification, Ranked, best_result, qualify, rank
from contest.usecases.base import UseCase


@dataclass(frozen=True)
class ResultsView:
    results: list[AttemptResult]
    best: AttemptResult | None
    in_progress: bool
    attempts_allowed: int


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
            return ResultsView(
                sorted(results, key=lambda r: r.number),
                best_result(results),
                current is not None,
                rules.attempts,
            )

    async def ranking(self, round_number: int = 1) -> list[Ranked]:
        """Everyone's counting attempt of a round, ranked (ties share a rank)."""
        async with self.uow(write=False) as uow:
            return rank(await uow.attempts.best_results(round_number))

    async def round2_qualifiers(self) -> Qualification:
        """The top of round 1 with at least the required share correct, ties at the cut."""
        round2 = self.rules.round2
        return qualify(await self.ranking(1), round2.qualifiers, round2.min_ratio)
