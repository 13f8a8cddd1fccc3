"""What round 2 and the prizes need from storage: decisions kept in ``contest_state``, the
confirmed qualifiers and prizes, the session code's tries, the hall's live view, and a
bulk queue of notifications."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class Confirmed:
    """A row of the confirmed qualifiers (or prizes: ``prize`` set)."""

    person_id: int
    rank: int
    attempt_id: int
    confirmed_at: datetime
    confirmed_by: str
    prize: str | None = None


@dataclass(frozen=True)
class HallSeat:
    """A qualifier as the organisers see the hall: their round-2 attempt, if any."""

    person_id: int
    full_name: str
    rank: int  # in round 1
    code_ok_at: datetime | None  # the last right code typed (any time)
    status: str | None  # in_progress, submitted, expired (None: not started)
    deadline_at: datetime | None
    correct: int | None
    total: int | None
    duration_seconds: float | None


@dataclass(frozen=True)
class Queued:
    """One notification of a bulk fan-out."""

    key: str
    person_id: int
    kind: str
    payload: dict[str, Any]


class Round2Repository(Protocol):
    async def state(self, key: str) -> tuple[str, datetime] | None:
        """A ``contest_state`` value (text) and when it was last set."""
        ...

    async def put_state(self, key: str, value: str, now: datetime, by: str) -> None:
        """Set a ``contest_state`` value (insert or replace)."""
        ...

    async def claim_state(self, key: str, value: str, now: datetime, by: str) -> bool:
        """Set the value only if the key is absent (a compare-and-set); False if present."""
        ...

    async def qualifiers(self) -> list[Confirmed]: ...
    async def is_qualifier(self, person_id: int) -> bool: ...
    async def add_qualifiers(
        self, rows: Sequence[tuple[int, int, int]], now: datetime, by: str
    ) -> None:
        """(person, rank, attempt) of each confirmed qualifier."""
        ...

    async def prizes(self) -> list[Confirmed]: ...
    async def add_prizes(
        self, rows: Sequence[tuple[int, str, int, int]], now: datetime, by: str
    ) -> None:
        """(person, prize, rank, attempt) of each confirmed prize."""
        ...

    async def failed_tries(self, person_id: int, since: datetime) -> list[datetime]:
        """When the person typed a wrong code after ``since``, oldest first."""
        ...

    async def record_try(self, person_id: int, now: datetime, ok: bool) -> None: ...
    async def code_passed(self, person_id: int, since: datetime) -> bool:
        """Whether the person typed the right code since ``since``."""
        ...

    async def seen_questions(self, person_id: int, round: int) -> set[int]:
        """The questions the person drew in a round."""
        ...

    async def open_attempts(self, round: int) -> int:
        """Attempts of the round still in progress."""
        ...

    async def ranking_inputs(self, round: int, predictions: bool) -> str:
        """A cheap fingerprint of what ranks a round: its finished attempts (results,
        counting flags, and their predictions if ``predictions``) and the locked persons.
        Computed in the database (no row leaves it), so a writer can check in its
        transaction that a ranking read earlier is still current."""
        ...

    async def hall(self) -> list[HallSeat]:
        """Every confirmed qualifier with their round-2 attempt, by round-1 rank."""
        ...

    async def queue(
        self, rows: Sequence[Queued], now: datetime, expires_at: datetime | None
    ) -> int:
        """Queue many notifications at once (a key already taken is left alone); how many
        were queued."""
        ...
