"""Timers on the event loop, for every channel: one-shot timers (an attempt's deadline) and
repeating ones (sweeps, the outbox poll, the campaign), on APScheduler's asyncio scheduler
with jobs in memory (they are rebuilt from the database at start-up).

python-telegram-bot's JobQueue is the same scheduler behind a Telegram application; these
timers need none, so a process serving Zalo alone runs them too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)

Callback = Callable[[], Awaitable[None]]
# A late timer still runs (APScheduler's default grace is 1 s); missed runs collapse.
JOB_DEFAULTS: dict[str, Any] = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}


class Timer:
    """A scheduled callback that can be cancelled (a no-op once it ran)."""

    def __init__(self, job: Job) -> None:
        self._job = job

    def cancel(self) -> None:
        with contextlib.suppress(LookupError):  # already ran (one-shot) or removed
            self._job.remove()


class Timers:
    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC, job_defaults=JOB_DEFAULTS)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._scheduler.start()
            self._started = True

    def shutdown(self) -> None:
        if self._started:
            self._scheduler.shutdown(wait=False)
            self._started = False

    @property
    def running(self) -> bool:
        return self._started

    def once(self, callback: Callback, delay: float, name: str) -> Timer:
        """Run ``callback`` once, ``delay`` seconds from now."""
        when = datetime.now(UTC) + timedelta(seconds=max(delay, 0.0))
        job = self._scheduler.add_job(_guarded(callback, name), "date", run_date=when, name=name)
        return Timer(job)

    def every(self, callback: Callback, interval: float, name: str, first: float = 0.0) -> Timer:
        """Run ``callback`` every ``interval`` seconds, the first time ``first`` seconds from
        now; a run still going when the next is due is skipped, not stacked."""
        start = datetime.now(UTC) + timedelta(seconds=max(first, 0.0))
        job = self._scheduler.add_job(
            _guarded(callback, name),
            "interval",
            seconds=interval,
            next_run_time=start,
            name=name,
        )
        return Timer(job)


def _guarded(callback: Callback, name: str) -> Callable[[], Awaitable[None]]:
    """A failing callback is logged (by kind: its message could quote data) and the timer
    goes on."""

    async def run() -> None:
        try:
            await callback()
        except Exception as exc:
            log.error("timer %s failed: %s", name, type(exc).__name__)
            log.debug("timer %s failed", name, exc_info=exc)

    return run


class _TimerJob:
    """What the deadline and campaign schedulers use of a PTB ``Job``."""

    def __init__(self, data: object, name: str) -> None:
        self.data = data
        self.name = name
        self.timer: Timer | None = None
        self.next_t: datetime | None = None

    def schedule_removal(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


class _TimerContext:
    """What a job callback reads of PTB's ``CallbackContext``: the job."""

    def __init__(self, job: _TimerJob) -> None:
        self.job = job


class TimerJobQueue:
    """The part of PTB's ``JobQueue`` the schedulers use (``run_once``, ``run_repeating``),
    on ``Timers``: a process without Telegram (Zalo alone) runs the same deadline sweeps,
    outbox delivery and campaign with it."""

    def __init__(self, timers: Timers) -> None:
        self.timers = timers

    def run_once(
        self,
        callback: Callable[[Any], Awaitable[None]],
        when: float,
        data: object = None,
        name: str | None = None,
        job_kwargs: dict[str, Any] | None = None,
    ) -> _TimerJob:
        job = _TimerJob(data, name or "once")
        context = _TimerContext(job)
        job.next_t = datetime.now(UTC) + timedelta(seconds=max(float(when), 0.0))
        job.timer = self.timers.once(lambda: callback(context), float(when), job.name)
        return job

    def run_repeating(
        self,
        callback: Callable[[Any], Awaitable[None]],
        interval: float,
        first: float | None = None,
        name: str | None = None,
        data: object = None,
        job_kwargs: dict[str, Any] | None = None,
    ) -> _TimerJob:
        job = _TimerJob(data, name or "repeating")
        context = _TimerContext(job)
        job.timer = self.timers.every(
            lambda: callback(context),
            float(interval),
            job.name,
            first=float(interval if first is None else first),
        )
        return job
