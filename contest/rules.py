"""The contest's rules and schedule, as the organisers configure them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
OPTION_COUNT = 3


class TieBreak(StrEnum):
    """What separates equal numbers of correct answers, in the order the contest file
    gives (``tie_break = ["prediction", "time"]``)."""

    PREDICTION = "prediction"  # the prediction closest to the official figure
    TIME = "time"  # the shorter time


@dataclass(frozen=True)
class Window:
    """A half-open period [opens, closes) in aware datetimes."""

    opens: datetime
    closes: datetime

    def __post_init__(self) -> None:
        if self.opens.tzinfo is None or self.closes.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.closes <= self.opens:
            raise ValueError("window closes before it opens")

    def contains(self, now: datetime) -> bool:
        return self.opens <= now < self.closes

    def is_before(self, now: datetime) -> bool:
        return now < self.opens

    def is_after(self, now: datetime) -> bool:
        return now >= self.closes


@dataclass(frozen=True)
class RoundRules:
    """One exam round: its window, size and time limit."""

    number: int
    window: Window
    questions: int = 20
    minutes: int = 20
    attempts: int = 2

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.minutes)


@dataclass(frozen=True)
class Round2Rules:
    """Who goes on to round 2 and where it happens."""

    round: RoundRules
    qualifiers: int = 50
    min_ratio: float = 0.5
    venue: str = ""
    # Whether the date (and venue) are decided: until then nothing presents them as such.
    scheduled: bool = True


@dataclass(frozen=True)
class PrizeRules:
    """How many prizes of each rank, and each prize's amount in đồng (the plan's values)."""

    first: int = 1
    second: int = 2
    third: int = 3
    consolation: int = 4
    first_amount: int = 3_000_000
    second_amount: int = 2_000_000
    third_amount: int = 1_000_000
    consolation_amount: int = 500_000

    @property
    def total(self) -> int:
        return self.first + self.second + self.third + self.consolation


@dataclass(frozen=True)
class QuotaRules:
    """What each unit must show: leaders taking part and a share of its staff."""

    min_leaders: int = 1
    min_staff_ratio: float = 0.3


@dataclass(frozen=True)
class ReminderRules:
    """The campaign's reminders (local times of day; None switches one off), and the quiet
    hours in which nothing the bot sends on its own goes out."""

    enabled: bool = True
    launch: bool = True  # campaign start: a launch message to everyone registered
    round1_opening: bool = True  # round 1 opens: an announcement to everyone registered
    daily_at: time | None = time(19, 0)  # each day of round 1: to those without an attempt
    days_before_close: int | None = 3  # that many days before the close: an attempt left
    last_day_at: time | None = time(8, 0)  # the last day of round 1: an attempt left
    round2_day_before: bool = True  # to the qualifiers, the day before round 2
    round2_hour_before: bool = True  # and one hour before it starts
    quiet_start: time = time(21, 0)
    quiet_end: time = time(7, 0)

    def quiet(self, local: time) -> bool:
        """Whether a local time of day falls in the quiet hours (which may span midnight)."""
        if self.quiet_start == self.quiet_end:
            return False
        if self.quiet_start < self.quiet_end:
            return self.quiet_start <= local < self.quiet_end
        return local >= self.quiet_start or local < self.quiet_end


@dataclass(frozen=True)
class ContestRules:
    campaign: Window
    round1: RoundRules
    round2: Round2Rules
    prizes: PrizeRules = field(default_factory=PrizeRules)
    quota: QuotaRules = field(default_factory=QuotaRules)
    min_age: int = 18
    warn_before: tuple[timedelta, ...] = (timedelta(minutes=5), timedelta(minutes=1))
    reminders: ReminderRules = field(default_factory=ReminderRules)
    # The tie rule: what separates equal numbers of correct answers, in order (then the
    # earlier submission). With PREDICTION, each attempt ends with ``prediction_question``.
    tie_break: tuple[TieBreak, ...] = (TieBreak.TIME,)
    prediction_question: str = ""

    @property
    def uses_prediction(self) -> bool:
        """Whether each attempt ends with the prediction question."""
        return TieBreak.PREDICTION in self.tie_break


# The prediction question when the contest file gives none.
DEFAULT_PREDICTION_QUESTION = (
    "Dự đoán có bao nhiêu người trả lời đúng tất cả các câu hỏi của vòng thi này?"
)
# The tie rules the contest file may name (``tie_break``), as written there.
TIE_RULES: tuple[tuple[TieBreak, ...], ...] = (
    (TieBreak.TIME,),
    (TieBreak.PREDICTION, TieBreak.TIME),
)


def to_local(when: datetime) -> datetime:
    """Show a stored UTC time in the plan's local time."""
    return when.astimezone(LOCAL_TZ)
