"""The tie rule: most correct, then (with the prediction question) the prediction closest to
the official figure, then the shorter time, then the earlier submission."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from contest.model import AttemptResult, AttemptStatus
from contest.scoring import TIME_ONLY, TieBreak, TieRule, best_per_person, rank, result_key

T0 = datetime(2024, 8, 5, 2, 0, tzinfo=UTC)
PREDICTING = TieRule((TieBreak.PREDICTION, TieBreak.TIME), official=1234)


def result(
    attempt_id: int,
    person: int,
    correct: int,
    seconds: float,
    prediction: int | None = None,
    *,
    finished: int = 0,
) -> AttemptResult:
    return AttemptResult(
        attempt_id,
        person,
        1,
        1,
        correct,
        20,
        seconds,
        T0 + timedelta(seconds=finished),
        AttemptStatus.SUBMITTED,
        prediction,
    )


def test_time_only_is_the_default_and_ignores_predictions():
    results = [result(1, 1, 18, 600, 1234), result(2, 2, 18, 500, 9)]
    assert [r.result.person_id for r in rank(results)] == [2, 1]
    assert rank(results) == rank(results, TIME_ONLY)


def test_the_closest_prediction_beats_a_shorter_time():
    results = [
        result(1, 1, 18, 500, 1000),  # 234 away, fast
        result(2, 2, 18, 900, 1230),  # 4 away, slow: first
        result(3, 3, 18, 700, 1238),  # 4 away too, faster than 2: before 2
        result(4, 4, 19, 1100, None),  # more correct: first of all, no prediction
        result(5, 5, 18, 400, None),  # no prediction: after every prediction
    ]
    ranked = rank(results, PREDICTING)
    assert [(r.rank, r.result.person_id) for r in ranked] == [
        (1, 4),
        (2, 3),
        (3, 2),
        (4, 1),
        (5, 5),
    ]


def test_equal_scores_share_a_rank_and_the_submission_only_orders_them():
    results = [result(1, 1, 18, 600, 1230, finished=5), result(2, 2, 18, 600, 1238, finished=1)]
    ranked = rank(results, PREDICTING)  # both 4 away, same time: tied
    assert [(r.rank, r.result.person_id) for r in ranked] == [(1, 2), (1, 1)]


def test_before_the_official_figure_predictions_separate_nobody():
    pending = TieRule((TieBreak.PREDICTION, TieBreak.TIME), official=None)
    results = [result(1, 1, 18, 600, 1234), result(2, 2, 18, 500, 99999)]
    assert [r.result.person_id for r in rank(results, pending)] == [2, 1]


def test_the_counting_attempt_follows_the_rule():
    mine = [result(1, 7, 18, 500, 100), result(2, 7, 18, 900, 1234)]
    assert best_per_person(mine)[7].attempt_id == 1
    assert best_per_person(mine, PREDICTING)[7].attempt_id == 2


def test_time_only_rule_matches_the_historic_key_on_random_results():
    rng = random.Random(3)
    results = [
        result(i, i % 400, rng.randint(0, 20), rng.choice([300.0, 600.0, 900.5]), finished=i)
        for i in range(2000)
    ]
    fast = rank(results)
    general = rank(results, TieRule((TieBreak.TIME,), official=5))  # same order, other path
    assert [r.result.attempt_id for r in fast] == [r.result.attempt_id for r in general]
    assert [r.rank for r in fast] == [r.rank for r in general]
    best = best_per_person(results)
    assert sorted(best.values(), key=result_key) == [r.result for r in fast]
