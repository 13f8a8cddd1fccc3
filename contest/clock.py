"""Injected time: the domain never calls ``datetime.now`` itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Source of the current time (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to (tests, rehearsals)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self._now += delta if delta is not None else timedelta(**kwargs)
        return self._now


class OffsetClock:
    """The wall clock, moved ahead by an offset that only grows (rehearsals: time passes as
    usual, and can be moved forward to reach a deadline or a reminder without waiting)."""

    def __init__(self, base: Clock | None = None) -> None:
        self._base: Clock = base if base is not None else SystemClock()
        self._offset = timedelta()

    @property
    def offset(self) -> timedelta:
        return self._offset

    def now(self) -> datetime:
        return self._base.now() + self._offset

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by ``delta`` (or ``timedelta(**kwargs)``); never backwards."""
        step = delta if delta is not None else timedelta(**kwargs)
        if step < timedelta():
            raise ValueError("OffsetClock only moves forward")
        self._offset += step
        return self.now()

    def set(self, when: datetime) -> datetime:
        """Move forward to ``when`` (an aware datetime, not before now)."""
        if when.tzinfo is None:
            raise ValueError("OffsetClock needs an aware datetime")
        return self.advance(when.astimezone(UTC) - self.now())
