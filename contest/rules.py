"""The contest's rules and schedule, as the organisers configure them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
OPTION_COUNT = 3


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
class ContestRules:
    campaign: Window
    round1: RoundRules
    round2: Round2Rules
    prizes: PrizeRules = field(default_factory=PrizeRules)
    quota: QuotaRules = field(default_factory=QuotaRules)
    min_age: int = 18
    warn_before: tuple[timedelta, ...] = (timedelta(minutes=5), timedelta(minutes=1))


def to_local(when: datetime) -> datetime:
    """Show a stored UTC time in the plan's local time."""
    return when.astimezone(LOCAL_TZ)
