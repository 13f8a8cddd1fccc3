"""Unit tests of drawing an attempt's questions and shuffling their options."""

from __future__ import annotations

import random
from collections import Counter
from itertools import permutations

import pytest

from contest.errors import ContestError
from contest.model import Question
from contest.selection import select_questions, shuffled_order


def make_bank(sizes: dict[str, int]) -> list[Question]:
    """A bank with ``sizes[topic]`` questions per topic and unique ids."""
    bank: list[Question] = []
    next_id = 1
    for topic, size in sizes.items():
        for i in range(size):
            bank.append(
                Question(
                    id=next_id,
                    topic=topic,
                    text=f"{topic} question {i}",
                    options=("first", "second", "third"),
                    answer=i % 3,
                )
            )
            next_id += 1
    return bank


def topics_of(bank: list[Question], ids: list[int]) -> Counter[str]:
    topic_by_id = {q.id: q.topic for q in bank}
    return Counter(topic_by_id[i] for i in ids)


FIVE_BY_TWELVE = {f"topic-{n}": 12 for n in range(5)}


@pytest.mark.parametrize("seed", range(20))
def test_returns_count_distinct_ids_from_the_bank(seed: int) -> None:
    bank = make_bank(FIVE_BY_TWELVE)
    ids = select_questions(bank, 20, random.Random(seed))
    assert len(ids) == 20
    assert len(set(ids)) == 20
    assert set(ids) <= {q.id for q in bank}


@pytest.mark.parametrize("seed", range(20))
def test_even_topics_get_an_equal_share(seed: int) -> None:
    bank = make_bank(FIVE_BY_TWELVE)
    ids = select_questions(bank, 20, random.Random(seed))
    assert topics_of(bank, ids) == {topic: 4 for topic in FIVE_BY_TWELVE}


@pytest.mark.parametrize("seed", range(20))
def test_remainder_goes_to_distinct_topics(seed: int) -> None:
    bank = make_bank(FIVE_BY_TWELVE)
    counts = topics_of(bank, select_questions(bank, 22, random.Random(seed)))
    assert sum(counts.values()) == 22
    assert sorted(counts.values()) == [4, 4, 4, 5, 5]


def test_remainder_is_not_always_given_to_the_same_topics() -> None:
    bank = make_bank(FIVE_BY_TWELVE)
    lucky: Counter[str] = Counter()
    for seed in range(100):
        counts = topics_of(bank, select_questions(bank, 21, random.Random(seed)))
        lucky.update(topic for topic, n in counts.items() if n == 5)
    assert set(lucky) == set(FIVE_BY_TWELVE)


@pytest.mark.parametrize("seed", range(20))
def test_a_short_topic_is_used_up_and_the_others_make_up(seed: int) -> None:
    sizes = {"short": 2, "b": 12, "c": 12, "d": 12, "e": 12}
    bank = make_bank(sizes)
    ids = select_questions(bank, 20, random.Random(seed))
    counts = topics_of(bank, ids)
    assert len(set(ids)) == 20
    assert counts["short"] == 2
    others = [counts[t] for t in ("b", "c", "d", "e")]
    assert sum(others) == 18
    assert sorted(others) == [4, 4, 5, 5]


@pytest.mark.parametrize("seed", range(10))
def test_several_short_topics(seed: int) -> None:
    sizes = {"one": 1, "three": 3, "big": 30}
    bank = make_bank(sizes)
    counts = topics_of(bank, select_questions(bank, 20, random.Random(seed)))
    assert counts == {"one": 1, "three": 3, "big": 16}


def test_a_single_topic_works() -> None:
    bank = make_bank({"only": 25})
    ids = select_questions(bank, 20, random.Random(7))
    assert len(set(ids)) == 20
    assert topics_of(bank, ids) == {"only": 20}


def test_a_bank_of_exactly_count_questions_uses_them_all() -> None:
    bank = make_bank({"a": 7, "b": 3, "c": 10})
    ids = select_questions(bank, 20, random.Random(3))
    assert sorted(ids) == sorted(q.id for q in bank)


def test_a_bank_smaller_than_count_is_refused() -> None:
    bank = make_bank({"a": 10, "b": 9})
    with pytest.raises(ContestError) as caught:
        select_questions(bank, 20, random.Random(1))
    assert caught.value.code == "bank_too_small"
    assert caught.value.params == {"needed": 20, "available": 19}


def test_an_empty_bank_is_refused() -> None:
    with pytest.raises(ContestError) as caught:
        select_questions([], 20, random.Random(1))
    assert caught.value.code == "bank_too_small"


@pytest.mark.parametrize("count", [0, -1])
def test_a_non_positive_count_is_a_programming_error(count: int) -> None:
    with pytest.raises(ValueError):
        select_questions(make_bank({"a": 5}), count, random.Random(1))


def test_the_same_seed_gives_the_same_draw() -> None:
    bank = make_bank(FIVE_BY_TWELVE)
    first = select_questions(bank, 20, random.Random(2024))
    second = select_questions(bank, 20, random.Random(2024))
    assert first == second


def test_different_seeds_give_different_draws() -> None:
    bank = make_bank(FIVE_BY_TWELVE)
    draws = {tuple(select_questions(bank, 20, random.Random(seed))) for seed in range(10)}
    assert len(draws) == 10


def test_the_first_question_is_not_always_from_the_same_topic() -> None:
    bank = make_bank(FIVE_BY_TWELVE)
    firsts = {
        topics_of(bank, select_questions(bank, 20, random.Random(seed))[:1]).most_common(1)[0][0]
        for seed in range(50)
    }
    assert firsts == set(FIVE_BY_TWELVE)


def test_the_draw_interleaves_topics() -> None:
    bank = make_bank(FIVE_BY_TWELVE)
    topic_by_id = {q.id: q.topic for q in bank}
    grouped = 0
    for seed in range(50):
        ids = select_questions(bank, 20, random.Random(seed))
        order = [topic_by_id[i] for i in ids]
        blocks = [t for n, t in enumerate(order) if n == 0 or order[n - 1] != t]
        if len(blocks) == 5:
            grouped += 1
    assert grouped == 0


def test_every_question_is_drawn_over_many_seeds() -> None:
    bank = make_bank(FIVE_BY_TWELVE)
    drawn: Counter[int] = Counter()
    for seed in range(300):
        drawn.update(select_questions(bank, 20, random.Random(seed)))
    assert set(drawn) == {q.id for q in bank}
    # Each question is drawn with probability 1/3; none should be far off.
    assert min(drawn.values()) > 50
    assert max(drawn.values()) < 150


def test_every_question_of_an_uneven_bank_is_drawn_over_many_seeds() -> None:
    bank = make_bank({"short": 2, "b": 12, "c": 12, "d": 12, "e": 12})
    drawn: set[int] = set()
    for seed in range(300):
        drawn.update(select_questions(bank, 20, random.Random(seed)))
    assert drawn == {q.id for q in bank}


def test_shuffled_order_is_always_a_permutation() -> None:
    rng = random.Random(11)
    for _ in range(500):
        order = shuffled_order(rng)
        assert isinstance(order, tuple)
        assert sorted(order) == [0, 1, 2]


def test_shuffled_order_produces_all_six_permutations() -> None:
    rng = random.Random(5)
    seen = Counter(shuffled_order(rng) for _ in range(1200))
    assert set(seen) == set(permutations(range(3)))
    # Roughly uniform: each of the 6 expected about 200 times.
    assert min(seen.values()) > 120


def test_shuffled_order_is_deterministic_with_a_seed() -> None:
    first = [shuffled_order(random.Random(9)) for _ in range(3)]
    rng_a, rng_b = random.Random(42), random.Random(42)
    assert [shuffled_order(rng_a) for _ in range(20)] == [shuffled_order(rng_b) for _ in range(20)]
    assert len(set(first)) == 1
