"""Unit tests of which attempt counts, ranking, qualification and prizes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import count, permutations

import pytest

from contest.model import AttemptResult, AttemptStatus
from contest.rules import PrizeRules
from contest.scoring import (
    Ranked,
    allocate_prizes,
    best_per_person,
    best_result,
    in_result_order,
    qualify,
    rank,
    result_key,
)

T0 = datetime(2024, 8, 1, 2, 0, tzinfo=UTC)
_ids = count(1)


def res(
    person: int,
    correct: int,
    seconds: float = 600.0,
    *,
    finished_minute: int = 0,
    number: int = 1,
    total: int = 20,
    attempt_id: int | None = None,
) -> AttemptResult:
    return AttemptResult(
        attempt_id=attempt_id if attempt_id is not None else next(_ids),
        person_id=person,
        round=1,
        number=number,
        correct=correct,
        total=total,
        duration_seconds=seconds,
        finished_at=T0 + timedelta(minutes=finished_minute),
        status=AttemptStatus.SUBMITTED,
    )


# ---------------------------------------------------------------- best attempt


def test_more_correct_wins_even_when_slower() -> None:
    fast = res(1, 12, 100)
    slow = res(1, 13, 1100)
    assert best_result([fast, slow]) is slow
    assert best_result([slow, fast]) is slow
    assert result_key(slow) < result_key(fast)


def test_with_equal_correct_the_shorter_duration_wins() -> None:
    a = res(1, 15, 500, finished_minute=0)
    b = res(1, 15, 400, finished_minute=30)
    assert best_result([a, b]) is b
    assert best_result([b, a]) is b


def test_with_equal_correct_and_duration_the_earlier_finish_wins() -> None:
    early = res(1, 15, 400, finished_minute=5)
    late = res(1, 15, 400, finished_minute=50)
    assert best_result([late, early]) is early
    assert best_result([early, late]) is early


def test_best_result_of_nothing_is_none() -> None:
    assert best_result([]) is None


def test_best_result_accepts_any_iterable() -> None:
    a, b = res(1, 10), res(1, 11)
    assert best_result(r for r in (a, b)) is b


def test_best_per_person_keeps_one_result_each() -> None:
    a1, a2 = res(1, 10), res(1, 14, number=2)
    b1, b2 = res(2, 9, 300), res(2, 9, 200, number=2)
    best = best_per_person([a1, b1, a2, b2])
    assert best == {1: a2, 2: b2}


# ---------------------------------------------------------------- ranking


def test_rank_orders_by_correct_then_duration() -> None:
    a = res(1, 18, 900)
    b = res(2, 19, 1000)
    c = res(3, 18, 800)
    ranked = rank([a, b, c])
    assert [(r.rank, r.result.person_id) for r in ranked] == [(1, 2), (2, 3), (3, 1)]


def test_ties_share_a_rank_and_the_next_rank_is_skipped() -> None:
    a = res(1, 20, 300)
    b = res(2, 18, 500, finished_minute=1)
    c = res(3, 18, 500, finished_minute=2)
    d = res(4, 17, 100)
    ranked = rank([d, c, b, a])
    assert [r.rank for r in ranked] == [1, 2, 2, 4]
    assert [r.result.person_id for r in ranked] == [1, 2, 3, 4]


def test_a_tie_in_correct_only_is_not_a_shared_rank() -> None:
    ranked = rank([res(1, 18, 500), res(2, 18, 501)])
    assert [r.rank for r in ranked] == [1, 2]


def test_three_way_tie_at_the_top() -> None:
    ranked = rank([res(p, 20, 300, finished_minute=p) for p in (3, 1, 2)])
    assert [r.rank for r in ranked] == [1, 1, 1]
    assert [r.result.person_id for r in ranked] == [1, 2, 3]  # earlier finish first


def test_rank_uses_each_persons_best_attempt_only() -> None:
    a_first = res(1, 12, 600, number=1)
    a_second = res(1, 19, 900, number=2)
    b_only = res(2, 15, 300)
    c_first = res(3, 16, 700, number=1)
    c_second = res(3, 16, 650, number=2)
    ranked = rank([a_first, b_only, c_first, a_second, c_second])
    assert len(ranked) == 3
    assert [r.result for r in ranked] == [a_second, c_second, b_only]
    assert [r.rank for r in ranked] == [1, 2, 3]


def test_rank_is_independent_of_input_order() -> None:
    results = [res(1, 14, 300), res(2, 14, 300), res(3, 19, 900), res(4, 2, 10)]
    expected = [(r.rank, r.result.attempt_id) for r in rank(results)]
    for order in permutations(results):
        assert [(r.rank, r.result.attempt_id) for r in rank(order)] == expected


def test_rank_of_nothing_is_empty() -> None:
    assert rank([]) == []


# ---------------------------------------------------------------- qualification


def ranked_scores(scores: list[int], total: int = 20) -> list[Ranked]:
    """Rank one attempt per person; person i scores ``scores[i]`` in 600 s."""
    return rank([res(i + 1, s, 600, total=total) for i, s in enumerate(scores)])


def test_qualify_takes_the_top_limit() -> None:
    ranked = ranked_scores([20, 19, 18, 17, 16])
    result = qualify(ranked, 3, 0.5)
    assert [r.result.correct for r in result.qualified] == [20, 19, 18]
    assert result.tied_at_cut == []


def test_qualify_excludes_those_under_the_ratio_even_with_room_left() -> None:
    ranked = ranked_scores([20, 10, 9, 3])
    result = qualify(ranked, 50, 0.5)
    assert [r.result.correct for r in result.qualified] == [20, 10]
    assert result.tied_at_cut == []


def test_exactly_half_correct_qualifies() -> None:
    result = qualify(ranked_scores([10]), 50, 0.5)
    assert len(result.qualified) == 1


def test_nobody_over_the_ratio_means_nobody_qualifies() -> None:
    result = qualify(ranked_scores([9, 5, 0]), 50, 0.5)
    assert result.qualified == []
    assert result.tied_at_cut == []


def test_ties_at_the_cut_are_reported() -> None:
    # Persons 3, 4 and 5 tie (same correct, same duration) around the cut of 3.
    ranked = ranked_scores([20, 19, 15, 15, 15, 12])
    result = qualify(ranked, 3, 0.5)
    assert [r.result.person_id for r in result.qualified] == [1, 2, 3]
    assert [r.result.person_id for r in result.tied_at_cut] == [4, 5]
    assert {r.rank for r in result.tied_at_cut} == {result.qualified[-1].rank}


def test_no_tie_reported_when_the_next_one_is_strictly_worse() -> None:
    ranked = ranked_scores([20, 19, 15, 14, 14])
    result = qualify(ranked, 3, 0.5)
    assert len(result.qualified) == 3
    assert result.tied_at_cut == []


def test_ties_below_the_ratio_are_not_reported_at_the_cut() -> None:
    ranked = ranked_scores([20, 9, 9])
    result = qualify(ranked, 1, 0.5)
    assert [r.result.correct for r in result.qualified] == [20]
    assert result.tied_at_cut == []


def test_qualify_fifty_of_many() -> None:
    scores = [20 - (i % 15) for i in range(120)]  # many ties at every score
    ranked = ranked_scores(scores)
    result = qualify(ranked, 50, 0.5)
    assert len(result.qualified) == 50
    assert all(r.result.ratio >= 0.5 for r in result.qualified)
    last = result.qualified[-1]
    assert all(r.rank == last.rank for r in result.tied_at_cut)
    beyond = ranked[50:]
    assert len(result.tied_at_cut) == sum(1 for r in beyond if r.rank == last.rank)
    assert result.tied_at_cut


# ---------------------------------------------------------------- prizes


def test_default_prizes_are_one_two_three_four() -> None:
    ranked = ranked_scores([20 - i for i in range(12)])
    awarded = allocate_prizes(ranked, PrizeRules())
    names = [name for name, _ in awarded]
    assert names == ["first"] + ["second"] * 2 + ["third"] * 3 + ["consolation"] * 4
    assert [r.result.correct for _, r in awarded] == [20 - i for i in range(10)]
    assert PrizeRules().total == 10


def test_fewer_contestants_than_prizes() -> None:
    awarded = allocate_prizes(ranked_scores([20, 18, 17]), PrizeRules())
    assert [name for name, _ in awarded] == ["first", "second", "second"]


def test_custom_prize_counts() -> None:
    ranked = ranked_scores([20 - i for i in range(6)])
    awarded = allocate_prizes(ranked, PrizeRules(first=2, second=0, third=1, consolation=1))
    assert [name for name, _ in awarded] == ["first", "first", "third", "consolation"]


@pytest.mark.parametrize("n", [0, 1, 10, 11])
def test_prizes_never_exceed_the_total_or_the_field(n: int) -> None:
    awarded = allocate_prizes(ranked_scores([20] * n), PrizeRules())
    assert len(awarded) == min(n, PrizeRules().total)


def test_the_fast_order_is_the_result_key_order() -> None:
    """Two stable sorts must give exactly ``sorted(key=result_key)``, ties included."""
    rng = random.Random(5)
    results = [
        res(
            person,
            rng.randrange(18, 21),
            rng.choice([300.0, 300.5, 301.0]),
            finished_minute=rng.randrange(3),
            attempt_id=rng.randrange(10**6),
        )
        for person in range(2000)
    ]
    assert in_result_order(results) == sorted(results, key=result_key)


def test_qualify_stops_at_the_cut_but_reports_everyone_tied_there() -> None:
    ranked = rank(
        [res(1, 20), res(2, 19), res(3, 18), res(4, 18), res(5, 18), res(6, 17), res(7, 5)]
    )
    chosen = qualify(ranked, 3, 0.5)
    assert [r.result.person_id for r in chosen.qualified] == [1, 2, 3]
    assert [r.result.person_id for r in chosen.tied_at_cut] == [4, 5]
    assert qualify(ranked, 10, 0.5).tied_at_cut == []
    assert [r.result.person_id for r in qualify(ranked, 10, 0.5).qualified] == [1, 2, 3, 4, 5, 6]
