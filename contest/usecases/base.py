"""What every use case shares: the unit of work, the clock, the rules, the randomness,
the deadline timer, the answer path's press stores and the question cache."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from contest.clock import Clock
from contest.model import Account, Question
from contest.ports import (
    AttemptTimer,
    NullTimer,
    PressStoreFactory,
    UnitOfWork,
    UnitOfWorkFactory,
    UnitOfWorkPresses,
)
from contest.rules import LOCAL_TZ, ContestRules

QUESTION_CACHE_SECONDS = 60.0


class QuestionCache:
    """Questions change only by import or by an organiser's fix: a short-lived cache keeps
    them off the answer path. Grading always reads the key from the database."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock
        self._questions: dict[int, Question] = {}
        self._questions_loaded_at: datetime | None = None
        self._refresh = asyncio.Lock()
        self._active: list[Question] = []
        self._active_loaded_at: datetime | None = None

    def invalidate(self) -> None:
        """The bank changed (an import, a fix): read it again at the next use."""
        self._questions_loaded_at = self._active_loaded_at = None

    async def active(self, uow: UnitOfWork, needed: int) -> list[Question]:
        """The active questions to draw from (read again while the cache holds fewer than
        ``needed``: a first import may be under way)."""
        if not self._fresh(self._active_loaded_at) or len(self._active) < needed:
            self._active = await uow.questions.catalog()
            self._active_loaded_at = self._clock.now()
        return self._active

    async def question(self, uow: UnitOfWork | None, question_id: int) -> Question:
        """A question from the cache, refreshed every QUESTION_CACHE_SECONDS or on a miss.

        Inside a unit of work the refresh reads through it. Without one (the answer path,
        its press store closed) one refresh runs at a time and the presses that found the
        cache stale together wait for it; none of them holds a connection meanwhile.
        """
        if not self._stale(question_id):
            return self._questions[question_id]
        if uow is not None:
            self._load(await uow.questions.catalog(include_inactive=True))
            return self._questions[question_id]
        async with self._refresh:
            if self._stale(question_id):  # nobody refreshed it while we waited
                async with self._uow(write=False) as reading:
                    self._load(await reading.questions.catalog(include_inactive=True))
        return self._questions[question_id]

    def _load(self, catalog: Sequence[Question]) -> None:
        self._questions = {q.id: q for q in catalog}
        self._questions_loaded_at = self._clock.now()

    def _stale(self, question_id: int) -> bool:
        return question_id not in self._questions or not self._fresh(self._questions_loaded_at)

    def _fresh(self, loaded_at: datetime | None) -> bool:
        """Whether a cache loaded at ``loaded_at`` is still young (a clock moved back makes
        it stale too)."""
        if loaded_at is None:
            return False
        return 0 <= (self._clock.now() - loaded_at).total_seconds() < QUESTION_CACHE_SECONDS


@dataclass
class Context:
    """Shared by the use cases of one process. ``timer`` is set by the assembly once the
    scheduler exists; ``presses`` defaults to press stores over a unit of work."""

    uow: UnitOfWorkFactory
    clock: Clock
    rules: ContestRules
    rng: random.Random = field(default_factory=random.SystemRandom)
    timer: AttemptTimer = field(default_factory=NullTimer)
    presses: PressStoreFactory | None = None
    # Organisers named in the settings (CONTEST_ADMIN_IDS and the like), on any channel.
    admins: frozenset[Account] = frozenset()
    bank: QuestionCache = field(init=False)

    def __post_init__(self) -> None:
        if self.presses is None:
            uow = self.uow
            self.presses = lambda: UnitOfWorkPresses(uow())
        self.bank = QuestionCache(self.uow, self.clock)

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        return self.clock.now().astimezone(LOCAL_TZ).date()


class UseCase:
    """A capability's use cases over the shared context."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    def uow(self) -> UnitOfWorkFactory:
        return self.ctx.uow

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def rules(self) -> ContestRules:
        return self.ctx.rules
