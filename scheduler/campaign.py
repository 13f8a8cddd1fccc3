"""The campaign's reminders on a timer: the process holding the scheduler lease looks for
due reminders every ``interval`` seconds and fans them out to the outbox (once each: the
database decides), then wakes the sender. Reminders are sent like any notification: paced,
retried, and held back in the quiet hours. The tick also completes a fan-out of final
round-1 results that a crash interrupted (``Rounds.finish_finals``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from telegram.ext import CallbackContext, JobQueue

import contest.ui.campaign_notices  # noqa: F401  (registers the reminders' notices)
from contest.services import ContestService
from scheduler.lease import LeaseGuard

log = logging.getLogger(__name__)

JOB_KWARGS: dict[str, Any] = {"misfire_grace_time": None, "coalesce": True}


class CampaignScheduler:
    def __init__(
        self,
        service: ContestService,
        job_queue: JobQueue[Any],
        lease: LeaseGuard,
        *,
        interval: float = 15.0,
        wake_sender: Callable[[], None] | None = None,
    ) -> None:
        self.service = service
        self.job_queue = job_queue
        self.lease = lease
        self.interval = interval
        self.wake_sender = wake_sender

    def start(self) -> None:
        self.job_queue.run_repeating(
            self._on_tick,
            interval=self.interval,
            first=min(self.interval, 1.0),
            name="campaign",
            job_kwargs=JOB_KWARGS,
        )

    async def _on_tick(self, context: CallbackContext[Any, Any, Any, Any]) -> None:
        await self.tick()

    async def tick(self) -> int:
        """Fan out what is due (lease holder only); how many reminders were handled. Also
        completes the final round-1 results of a qualification a crash left pending (the
        first tick comes a second after start-up)."""
        if not self.lease.holding:
            return 0
        done = await self.service.campaign.run_due()
        finals = await self.service.rounds.finish_finals()
        if finals:
            log.info("final round-1 results resumed: %d queued", finals)
        if (done or finals) and self.wake_sender is not None:
            self.wake_sender()
        return len(done)
