"""The prediction question (the tie rule ``["prediction", "time"]``): reading a typed
prediction, the official figure an organiser enters once the round is over
(``/dapandudoan``), and the tie rule in force that ranking reads.

The official figure is kept in ``contest_state`` under ``prediction_official`` as a whole
number in text (round 2's qualification reads the same key). Entering it is refused while
an attempt of round 1 may still be running or waiting for its prediction (until the close
plus one attempt's time limit), and is audited with the figure it replaces; the counting
attempts of round 1 are flagged again by the rule in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from contest.errors import ContestError
from contest.ports import UnitOfWork
from contest.rules import ContestRules
from contest.scoring import TIME_ONLY, Ranked, TieRule, rank
from contest.usecases.base import UseCase
from contest.usecases.staff import Actor, audit

OFFICIAL_KEY = "prediction_official"  # contest_state: round 1's official figure, int as text
OFFICIAL_ACTION = "dapandudoan"  # the audit log's name for it, as the console's command
# A prediction is a count of persons: a district's contest has far fewer contestants.
MAX_PREDICTION = 1_000_000

_PLAIN = re.compile(r"[0-9]+")
_GROUPED = re.compile(r"[0-9]{1,3}(?:[., ][0-9]{3})+")  # 1.234 or 1 234: thousands grouped


def parse_count(text: str, limit: int = MAX_PREDICTION) -> int | None:
    """A non-negative whole number as a person types it ("1234", "1.234", "1 234", "1234
    người"); None when it is not one or is above ``limit``."""
    value = " ".join(text.split()).lower().removesuffix("người").strip()
    if _PLAIN.fullmatch(value):
        number = int(value)
    elif _GROUPED.fullmatch(value):
        number = int(re.sub(r"[.,\s]", "", value))
    else:
        return None
    return number if number <= limit else None


def parse_official(text: str) -> int | None:
    """The stored official figure (int as text), or None when unset or unreadable."""
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


async def official_figure(uow: UnitOfWork) -> int | None:
    value = await uow.state.get(OFFICIAL_KEY)
    return parse_official(value) if value is not None else None


async def tie_rule_in(uow: UnitOfWork, rules: ContestRules, round_number: int = 1) -> TieRule:
    """The tie rule in force for a round: the contest file's, with the official figure
    once entered. The prediction question belongs to round 1 (the online round, where
    thousands tie); round 2, at the hall, asks none: its ties go by time."""
    if not rules.uses_prediction or round_number != 1:
        return TIME_ONLY
    return TieRule(rules.tie_break, await official_figure(uow))


async def ranked_in(
    uow: UnitOfWork,
    rules: ContestRules,
    round_number: int,
    only: Collection[int] | None = None,
) -> list[Ranked]:
    """Every person's best attempt of a round by the tie rule in force, ranked (locked
    persons left out; ``only`` these persons, if given): the counting attempts under the
    time-only rule; under another, every finished attempt with its prediction (the rule
    may pick another of a person's)."""
    rule = await tie_rule_in(uow, rules, round_number)
    if rule == TIME_ONLY:
        results = await uow.attempts.best_results(round_number)
    else:
        results = await uow.attempts.ranking_results(round_number)
    if only is not None:
        results = [r for r in results if r.person_id in only]
    return rank(results, rule)


@dataclass(frozen=True)
class PredictionView:
    """Round 1's prediction question as the organisers see it."""

    question: str
    official: int | None
    previous: int | None  # the figure a change replaced (None: first entered, or no change)
    attempts: int  # finished attempts of round 1
    with_prediction: int  # of them, with a prediction
    open_until: datetime  # the figure may be entered from then on
    at: datetime


class Predictions(UseCase):
    @property
    def open_until(self) -> datetime:
        """Until then an attempt of round 1 may still be running or waiting for its
        prediction: the close, plus one attempt's time limit."""
        round1 = self.rules.round1
        return round1.window.closes + round1.duration

    async def tie_rule(self, round_number: int = 1) -> TieRule:
        async with self.uow(write=False) as uow:
            return await tie_rule_in(uow, self.rules, round_number)

    async def overview(self) -> PredictionView:
        if not self.rules.uses_prediction:
            raise ContestError("prediction_off")
        async with self.uow(write=False) as uow:
            return await self._view(uow, await official_figure(uow), None)

    async def set_official(self, actor: Actor, text: str) -> PredictionView:
        """Enter (or correct) round 1's official figure; audited, in its transaction."""
        if not self.rules.uses_prediction:
            raise ContestError("prediction_off")
        now = self.clock.now()
        if now < self.open_until:
            raise ContestError(
                "prediction_round_open",
                closes=self.rules.round1.window.closes,
                until=self.open_until,
            )
        value = parse_count(text)
        if value is None:
            raise ContestError("prediction_official_invalid", text=text.strip()[:20])
        async with self.uow() as uow:
            if await uow.round2.qualifiers():
                # The round-2 list was cut by the figure in force: it stays as confirmed.
                raise ContestError("prediction_official_locked")
            previous = await official_figure(uow)
            await uow.state.put(OFFICIAL_KEY, str(value), actor.key, now)
            await uow.attempts.recount(1, value)
            view = await self._view(uow, value, previous)
            await audit(
                uow,
                now,
                actor,
                OFFICIAL_ACTION,
                "ok",
                target=str(value),
                detail={
                    "official": value,
                    "previous": previous,
                    "attempts": view.attempts,
                    "with_prediction": view.with_prediction,
                },
            )
            await uow.commit()
        return view

    async def _view(
        self, uow: UnitOfWork, official: int | None, previous: int | None
    ) -> PredictionView:
        attempts, with_prediction = await uow.attempts.prediction_counts(1)
        return PredictionView(
            question=self.rules.prediction_question,
            official=official,
            previous=previous,
            attempts=attempts,
            with_prediction=with_prediction,
            open_until=self.open_until,
            at=self.clock.now(),
        )
