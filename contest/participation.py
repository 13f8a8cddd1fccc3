"""Participation of the units: the plan's quota (at least 1 leader and 30% of the staff of
every unit take part) and the figures each unit's year-end emulation score rests on
("Kết quả tham gia cuộc thi của các cơ quan, đơn vị là cơ sở để đánh giá, xem xét điểm thi
đua, xếp loại cuối năm")."""

from __future__ import annotations

import math
from dataclasses import dataclass

from contest.model import Unit, UnitKind
from contest.rules import QuotaRules


@dataclass(frozen=True)
class UnitCounts:
    """What the database counts for one unit (its civil servants; locked accounts left out).

    ``participants``: registered staff with at least one finished round-1 attempt;
    ``leaders``: those of them registered as the unit's leaders; ``best_sum``: the sum of
    their counting attempts' shares of correct answers (0..1 each)."""

    unit: Unit
    registered: int
    participants: int
    leaders: int
    best_sum: float


@dataclass(frozen=True)
class UnitParticipation:
    unit: Unit
    registered: int
    participants: int
    leaders: int
    rate: float  # participants / staff (0..1, may exceed 1 if the staff count is stale)
    needed: int  # participants the quota asks for
    leader_ok: bool
    rate_ok: bool
    average_best: float | None  # mean share of correct answers of the participants

    @property
    def meets_quota(self) -> bool:
        return self.leader_ok and self.rate_ok

    @property
    def missing(self) -> int:
        """Participants still needed to reach the share of staff."""
        return max(self.needed - self.participants, 0)


def needed_participants(staff: int, quota: QuotaRules) -> int:
    """The smallest number of participants that is at least the quota's share of staff
    (30% of 24 staff is 7.2: 8 people)."""
    # Rounded first: 0.3 * 10 is 3.0000000000000004 in binary, and must need 3, not 4.
    return math.ceil(round(staff * quota.min_staff_ratio, 9))


def evaluate(counts: UnitCounts, quota: QuotaRules) -> UnitParticipation:
    staff = counts.unit.staff_count
    needed = needed_participants(staff, quota)
    return UnitParticipation(
        unit=counts.unit,
        registered=counts.registered,
        participants=counts.participants,
        leaders=counts.leaders,
        rate=counts.participants / staff if staff else 0.0,
        needed=needed,
        leader_ok=counts.leaders >= quota.min_leaders,
        rate_ok=counts.participants >= needed,
        average_best=counts.best_sum / counts.participants if counts.participants else None,
    )


def worst_first(rows: list[UnitParticipation]) -> list[UnitParticipation]:
    """Units that miss the quota first, then by participation rate (lowest first), then by
    name: the order organisers chase units in."""
    return sorted(rows, key=lambda r: (r.meets_quota, r.rate, r.leader_ok, r.unit.name))


@dataclass(frozen=True)
class Totals:
    """The contest at a glance."""

    registered: int
    civil_servants: int
    citizens: int
    took_part: int  # with at least one finished round-1 attempt
    attempts: int  # finished round-1 attempts
    in_progress: int
    by_kind: dict[UnitKind, tuple[int, int]]  # civil servants registered, took part
