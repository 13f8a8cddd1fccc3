"""Drawing the questions of an attempt and shuffling their options."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from typing import Protocol

from contest.errors import ContestError


class TopicTagged(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def topic(self) -> str: ...


def select_questions(bank: Sequence[TopicTagged], count: int, rng: random.Random) -> list[int]:
    """Pick ``count`` distinct question ids, spread as evenly as the topics allow.

    Each topic gets ``count // topics`` questions (more where a topic is short and
    others must make up for it); the remainder goes to randomly chosen topics.
    The final order is shuffled so topics are interleaved.
    """
    if count <= 0:
        raise ValueError("count must be positive")
    if len(bank) < count:
        raise ContestError("bank_too_small", needed=count, available=len(bank))

    by_topic: dict[str, list[int]] = {}
    for question in bank:
        by_topic.setdefault(question.topic, []).append(question.id)
    pools = {topic: rng.sample(ids, len(ids)) for topic, ids in sorted(by_topic.items())}

    quota = {topic: 0 for topic in pools}
    remaining = count
    open_topics = list(pools)
    while remaining > 0:
        open_topics = [t for t in open_topics if quota[t] < len(pools[t])]
        share, extra = divmod(remaining, len(open_topics))
        lucky = set(rng.sample(open_topics, extra))
        for topic in open_topics:
            room = len(pools[topic]) - quota[topic]
            take = min(room, share + (1 if topic in lucky else 0))
            quota[topic] += take
            remaining -= take

    chosen = [qid for topic, pool in pools.items() for qid in pool[: quota[topic]]]
    rng.shuffle(chosen)
    return chosen


def select_avoiding(
    bank: Sequence[TopicTagged], count: int, rng: random.Random, avoid: Collection[int]
) -> list[int]:
    """``select_questions`` from the questions not in ``avoid`` (those the person saw in
    an earlier round) where the bank allows; otherwise every fresh question, and the rest
    drawn from the avoided ones."""
    fresh = [q for q in bank if q.id not in avoid]
    if len(fresh) >= count:
        return select_questions(fresh, count, rng)
    seen = [q for q in bank if q.id in avoid]
    chosen = [q.id for q in fresh]
    if count > len(chosen):
        chosen += select_questions(seen, count - len(chosen), rng)
    rng.shuffle(chosen)
    return chosen


def shuffled_order(rng: random.Random, options: int = 3) -> tuple[int, int, int]:
    """A random permutation of the option indexes (label i shows option order[i])."""
    order = list(range(options))
    rng.shuffle(order)
    return (order[0], order[1], order[2])
