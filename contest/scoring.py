"""Which attempt counts, ranking, qualification for round 2 and prizes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from contest.model import AttemptResult
from contest.rules import PrizeRules


def result_key(result: AttemptResult) -> tuple[int, float, datetime, int]:
    """Sort key: most correct, then shorter time, then the earlier submission."""
    return (-result.correct, result.duration_seconds, result.finished_at, result.attempt_id)


def best_result(results: Iterable[AttemptResult]) -> AttemptResult | None:
    """The attempt that counts, or None when there is none."""
    return min(results, key=result_key, default=None)


def best_per_person(results: Iterable[AttemptResult]) -> dict[int, AttemptResult]:
    """The counting attempt of every person."""
    best: dict[int, AttemptResult] = {}
    for result in results:
        current = best.get(result.person_id)
        if current is None or result_key(result) < result_key(current):
            best[result.person_id] = result
    return best


@dataclass(frozen=True)
class Ranked:
    rank: int  # 1-based; equal (correct, duration) share a rank
    result: AttemptResult


def rank(results: Iterable[AttemptResult]) -> list[Ranked]:
    """Rank the best attempt of each person (competition ranking, ties share a rank)."""
    ordered = sorted(best_per_person(results).values(), key=result_key)
    ranked: list[Ranked] = []
    previous: tuple[int, float] | None = None
    current_rank = 0
    for index, result in enumerate(ordered, start=1):
        score = (result.correct, result.duration_seconds)
        if score != previous:
            current_rank = index
            previous = score
        ranked.append(Ranked(current_rank, result))
    return ranked


@dataclass(frozen=True)
class Qualification:
    qualified: list[Ranked]
    tied_at_cut: list[Ranked]  # tied with the last qualifier but beyond the limit


def qualify(ranked: Sequence[Ranked], limit: int, min_ratio: float) -> Qualification:
    """The top ``limit`` with at least ``min_ratio`` correct; ties at the cut are reported."""
    eligible = [r for r in ranked if r.result.ratio >= min_ratio]
    qualified = eligible[:limit]
    tied: list[Ranked] = []
    if qualified and len(eligible) > limit:
        last = qualified[-1].rank
        tied = [r for r in eligible[limit:] if r.rank == last]
    return Qualification(qualified, tied)


PRIZE_NAMES = ("first", "second", "third", "consolation")


def allocate_prizes(ranked: Sequence[Ranked], prizes: PrizeRules) -> list[tuple[str, Ranked]]:
    """Give prizes in rank order: 1 first, 2 second, 3 third, 4 consolation (by default)."""
    counts = (prizes.first, prizes.second, prizes.third, prizes.consolation)
    slots = [name for name, n in zip(PRIZE_NAMES, counts, strict=True) for _ in range(n)]
    return list(zip(slots, ranked, strict=False))
