"""The contest's use cases put together: one object per capability over one shared context.

Adapters (the Telegram handlers, the Zalo channel, the scheduler, the command line) hold a
``ContestService`` and call ``service.registration``, ``service.exams``, ``service.results``,
``service.outbox`` or ``service.console``. The modules under ``contest.usecases`` say what
each does; the views they return are re-exported here for the adapters' convenience.
"""

from __future__ import annotations

import random

from contest.clock import Clock
from contest.model import Account
from contest.ports import AttemptTimer, PressStoreFactory, UnitOfWorkFactory, UploadReader
from contest.rules import ContestRules
from contest.usecases.base import Context
from contest.usecases.broadcasts import Broadcasts
from contest.usecases.campaign import Campaign
from contest.usecases.console import Console
from contest.usecases.exams import (
    AnswerOutcome,
    AttemptSummary,
    ExamCard,
    Exams,
    ExamState,
    ExamStatus,
    PredictionAsk,
    Warning_,
)
from contest.usecases.exports import Exports
from contest.usecases.feedback import Feedback
from contest.usecases.fixes import QuestionFixes
from contest.usecases.linking import Linking
from contest.usecases.locks import Locks
from contest.usecases.outbox import (
    INLINE_RESULT_GRACE,
    RESULT_NOTIFICATION,
    WARNING_NOTIFICATION,
    Outbox,
    retry_delay,
)
from contest.usecases.predictions import Predictions, PredictionView
from contest.usecases.prizes import Prizes
from contest.usecases.registration import Profile, Registration, RegistrationView
from contest.usecases.results import Results, ResultsView
from contest.usecases.rounds import Rounds
from contest.usecases.staff import Staff
from contest.usecases.stats import Stats

__all__ = [
    "INLINE_RESULT_GRACE",
    "RESULT_NOTIFICATION",
    "WARNING_NOTIFICATION",
    "AnswerOutcome",
    "AttemptSummary",
    "ContestService",
    "ExamCard",
    "ExamState",
    "ExamStatus",
    "PredictionAsk",
    "PredictionView",
    "Profile",
    "RegistrationView",
    "ResultsView",
    "Warning_",
    "retry_delay",
]


class ContestService:
    """Every use case of the contest, over a unit of work, a clock and the rules."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        rules: ContestRules,
        *,
        rng: random.Random | None = None,
        timer: AttemptTimer | None = None,
        presses: PressStoreFactory | None = None,
        admins: frozenset[Account] = frozenset(),
        upload_reader: UploadReader | None = None,
    ) -> None:
        self.ctx = Context(uow, clock, rules, presses=presses, admins=admins)
        if rng is not None:
            self.ctx.rng = rng
        if timer is not None:
            self.ctx.timer = timer
        self.registration = Registration(self.ctx)
        self.exams = Exams(self.ctx)
        self.results = Results(self.ctx)
        self.outbox = Outbox(self.ctx)
        self.console = Console(self.ctx, upload_reader)
        self.fixes = QuestionFixes(self.ctx)
        self.staff = Staff(self.ctx)
        self.stats = Stats(self.ctx)
        self.exports = Exports(self.ctx)
        self.broadcasts = Broadcasts(self.ctx)
        self.feedback = Feedback(self.ctx)
        self.locks = Locks(self.ctx)
        self.campaign = Campaign(self.ctx)
        self.rounds = Rounds(self.ctx)
        self.prizes = Prizes(self.ctx)
        self.linking = Linking(self.ctx)
        self.predictions = Predictions(self.ctx)

    @property
    def uow(self) -> UnitOfWorkFactory:
        return self.ctx.uow

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def rules(self) -> ContestRules:
        return self.ctx.rules

    @property
    def timer(self) -> AttemptTimer:
        return self.ctx.timer

    @timer.setter
    def timer(self, timer: AttemptTimer) -> None:
        """The assembly sets the deadline scheduler once it exists."""
        self.ctx.timer = timer
