"""Entities of the contest and their pure behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import NamedTuple


class Channel(StrEnum):
    """A messaging platform a person reaches the contest through."""

    TELEGRAM = "telegram"
    ZALO = "zalo"
    # The command line (``contest-bot admin``): an organiser at the server, never a recipient.
    CLI = "cli"


class Account(NamedTuple):
    """A person's account on one channel: the platform's user id, as text. One person may
    link several (explicitly, never by name or phone); the contest counts them once."""

    channel: Channel
    user_id: str

    @classmethod
    def telegram(cls, user_id: int | str) -> Account:
        return cls(Channel.TELEGRAM, str(user_id))

    @classmethod
    def zalo(cls, user_id: int | str) -> Account:
        return cls(Channel.ZALO, str(user_id))

    def __str__(self) -> str:
        return f"{self.channel.value}:{self.user_id}"


class UnitKind(StrEnum):
    DEPARTMENT = "phong_ban"
    WARD = "phuong"
    EDUCATION = "giao_duc"


class Group(StrEnum):
    CIVIL_SERVANT = "civil_servant"
    CITIZEN = "citizen"


class Position(StrEnum):
    LEADER = "leader"
    STAFF = "staff"


class AttemptStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"  # every question answered
    EXPIRED = "expired"  # closed by the deadline


@dataclass(frozen=True)
class Unit:
    id: int
    code: str
    name: str
    kind: UnitKind
    staff_count: int


@dataclass(frozen=True)
class Question:
    id: int
    topic: str
    text: str
    options: tuple[str, str, str]
    answer: int  # index into options, 0..2


@dataclass(frozen=True)
class Person:
    id: int
    full_name: str
    birth_date: date
    phone: str
    group: Group
    unit_id: int | None
    position: Position | None
    ward_id: int | None
    consent_at: datetime
    registered_at: datetime
    # Kept out of attempts and rankings by an organiser (a duplicate account, say), and why.
    locked_at: datetime | None = None
    lock_reason: str | None = None
    # The platform said the person cannot be reached (blocked the bot): skipped by bulk
    # sends until they write to the bot again.
    unreachable_at: datetime | None = None
    reminders_off: bool = False  # /nhacnho: no campaign reminders

    @property
    def locked(self) -> bool:
        return self.locked_at is not None


@dataclass
class AttemptItem:
    """One question of an attempt, with the option order shown and the choice made.

    ``order[i]`` is the index of the original option displayed under label i (A, B, C).
    ``choice`` is the displayed label index the contestant pressed.
    """

    position: int
    question_id: int
    order: tuple[int, int, int]
    choice: int | None = None
    correct: bool | None = None
    answered_at: datetime | None = None

    @property
    def answered(self) -> bool:
        return self.choice is not None


@dataclass
class Attempt:
    id: int
    person_id: int
    round: int
    number: int
    started_at: datetime
    deadline_at: datetime
    status: AttemptStatus = AttemptStatus.IN_PROGRESS
    finished_at: datetime | None = None
    correct_count: int = 0
    duration_seconds: float | None = None
    warned: int = 0  # how many deadline warnings were already sent
    chat_id: int | None = None
    message_id: int | None = None
    items: list[AttemptItem] = field(default_factory=list)
    prediction: int | None = None  # the number typed at the end, when the tie rule asks

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def finished(self) -> bool:
        return self.status is not AttemptStatus.IN_PROGRESS

    def current_position(self) -> int | None:
        """The first unanswered question, or None when all are answered."""
        for item in self.items:
            if not item.answered:
                return item.position
        return None

    def time_left(self, now: datetime) -> timedelta:
        return max(self.deadline_at - now, timedelta(0))

    def expired_at(self, now: datetime) -> bool:
        return now > self.deadline_at


class Role(IntEnum):
    """What an account may do: organisers everything, a unit's focal person ("đầu mối") see
    their unit's participation, contestants their own things."""

    CONTESTANT = 0
    FOCAL = 1
    ORGANISER = 2


@dataclass(frozen=True)
class StaffRole:
    """A role granted in the chat (organisers may also come from the settings)."""

    account: Account
    role: Role
    unit_id: int | None  # a focal person's unit
    person_id: int | None
    granted_by: str
    granted_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One organiser action, or a refused attempt at one: who, when, what, the outcome."""

    at: datetime
    actor: str  # "telegram:123"
    action: str
    outcome: str  # ok, refused, failed
    target: str | None = None
    actor_name: str | None = None
    detail: dict[str, object] | None = None
    id: int | None = None


class AttemptResult(NamedTuple):
    """The outcome of a finished attempt, as used for ranking (a named tuple: a city's
    ranking builds 100,000 of them, and a tuple is built twice as fast as a frozen
    dataclass)."""

    attempt_id: int
    person_id: int
    round: int
    number: int
    correct: int
    total: int
    duration_seconds: float
    finished_at: datetime
    status: AttemptStatus
    prediction: int | None = None  # the number typed at the end, when the tie rule asks

    @property
    def ratio(self) -> float:
        return self.correct / self.total if self.total else 0.0


def age_on(birth: date, today: date) -> int:
    """Whole years between birth and today."""
    years = today.year - birth.year
    if (today.month, today.day) < (birth.month, birth.day):
        years -= 1
    return years
