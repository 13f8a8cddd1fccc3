"""Deadlines of attempts. The database decides; timers only make it happen on time.

* ``arm`` puts one job per attempt on PTB's JobQueue at its deadline;
* a periodic sweep closes whatever is overdue (timers lost in a restart, another
  process's attempts, a clock that moved) and queues the 5- and 1-minute warnings;
  results and warnings are sent from the outbox, so a failed send is retried;
* on start-up ``rearm`` arms every open attempt and sweeps at once, so attempts whose
  deadline passed while the bot was down are closed and their results sent.
Closing is a compare-and-set in the database, so exactly one path closes an attempt.

With several processes, only the holder of the "scheduler" lease sweeps, re-arms
everything and sends from the outbox (so the bulk pace, 30 messages/s, holds overall);
when it dies, the next process to renew takes the lease over and re-arms. Every process
still arms the attempts it starts itself (the compare-and-set keeps that safe), so
deadlines stay punctual wherever an attempt began; the holder looks at the outbox every
second and sends their results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from telegram.error import TelegramError
from telegram.ext import CallbackContext, Job, JobQueue

import contest.ui.exam_notices  # noqa: F401  (registers the notices of attempts)
from contest.model import Account, Channel
from contest.ports import Notification
from contest.services import ContestService
from contest.ui.notices import Notice, Refused, Unreachable, render
from scheduler.lease import LeaseGuard, holder_name

log = logging.getLogger(__name__)

# A late timer must still run: APScheduler's default misfire grace is 1 s.
JOB_KWARGS: dict[str, Any] = {"misfire_grace_time": None, "coalesce": True}
# Notifications in flight at once. Each one waits for its send slots (about 30 messages/s
# overall, and a second between the two messages of a result, which go to the same chat),
# so they must overlap to reach the overall pace; the bulk connection pool has this size.
# The claimed rows are never more than this, so a claim (60 s) does not run out unsent.
DELIVERY_CONCURRENCY = 32
DELIVERY_POLL_SECONDS = 1.0  # how often the lease holder looks at the outbox
STOP_GRACE_SECONDS = 5.0  # at shutdown, for the sends in flight


class ChannelSender(Protocol):
    """Sends notices on one channel (Telegram, Zalo); raises Unreachable or Refused on a
    final answer of the platform, anything else on a transient failure."""

    channel: Channel

    async def deliver(self, account: Account, notice: Notice) -> None: ...


def process_name() -> str:
    """Who holds a lease or a claim: host, process and a per-application tag."""
    return holder_name()


class DeadlineScheduler:
    """Implements ``contest.ports.AttemptTimer`` on a PTB JobQueue."""

    def __init__(
        self,
        service: ContestService,
        senders: Iterable[ChannelSender],
        job_queue: JobQueue[Any],
        lease: LeaseGuard,
        *,
        sweep_seconds: float = 10.0,
    ) -> None:
        self.service = service
        # One sender per channel this process sends on (Telegram; Zalo).
        self.senders: dict[Channel, ChannelSender] = {sender.channel: sender for sender in senders}
        self.job_queue = job_queue
        self.lease = lease
        self.sweep_seconds = sweep_seconds
        self.owner = lease.holder
        self._jobs: dict[int, Job[Any]] = {}
        self._delivering = asyncio.Lock()
        self._delivery: asyncio.Task[int] | None = None
        self._stopping = False

    # -------------------------------------------------------------- AttemptTimer

    def arm(self, attempt_id: int, deadline_at: datetime) -> None:
        self.disarm(attempt_id)
        delay = max((deadline_at - self.service.clock.now()).total_seconds(), 0.0)
        self._jobs[attempt_id] = self.job_queue.run_once(
            self._on_deadline,
            when=delay + 0.05,  # land just after the deadline, not on it
            data=attempt_id,
            name=f"deadline:{attempt_id}",
            job_kwargs=JOB_KWARGS,
        )

    def disarm(self, attempt_id: int) -> None:
        job = self._jobs.pop(attempt_id, None)
        if job is not None:
            job.schedule_removal()

    @property
    def armed(self) -> int:
        return len(self._jobs)

    # -------------------------------------------------------------- jobs

    def start(self) -> None:
        """Run the sweep now and then every ``sweep_seconds``; look at the outbox every
        DELIVERY_POLL_SECONDS (lease holder only)."""
        self.job_queue.run_repeating(
            self._on_sweep,
            interval=self.sweep_seconds,
            first=0.0,
            name="deadline-sweep",
            job_kwargs=JOB_KWARGS,
        )
        self.job_queue.run_repeating(
            self._on_poll,
            interval=min(DELIVERY_POLL_SECONDS, self.sweep_seconds),
            name="outbox-delivery",
            job_kwargs=JOB_KWARGS,
        )

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop sending (shutdown): no more claims; the sends in flight get ``grace``
        seconds to finish (one cut between its two messages would be sent again in
        full), then are cancelled: their rows are claimed again once their claims run out."""
        self._stopping = True
        task, self._delivery = self._delivery, None
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except Exception:
            return  # the delivery failed: _log_failure has said why

    def kick(self) -> None:
        """Start sending from the outbox in the background, if this process holds the
        lease and is not sending already. A job that awaited a long delivery would be
        skipped by the job queue at every tick meanwhile."""
        if self._stopping or not self.lease.holding:
            return
        if self._delivery is not None and not self._delivery.done():
            return
        self._delivery = asyncio.create_task(self.deliver(), name="outbox-delivery")
        self._delivery.add_done_callback(_log_failure)

    async def rearm(self) -> int:
        """Arm a timer for every attempt still open in the database."""
        open_attempts = await self.service.exams.open_deadlines()
        for attempt_id, deadline_at in open_attempts:
            self.arm(attempt_id, deadline_at)
        log.info("re-armed %d open attempts", len(open_attempts))
        return len(open_attempts)

    async def _on_deadline(self, context: CallbackContext[Any, Any, Any, Any]) -> None:
        job = context.job
        assert job is not None and isinstance(job.data, int)
        attempt_id = job.data
        self._jobs.pop(attempt_id, None)
        if await self.service.exams.close_if_expired(attempt_id):
            self.kick()  # elsewhere the lease holder sends the result within a second
            return
        # Still open: the clock has not reached the deadline yet (it was moved).
        deadline_at = await self.service.exams.open_deadline(attempt_id)
        if deadline_at is not None:
            self.arm(attempt_id, deadline_at)

    async def _on_sweep(self, context: CallbackContext[Any, Any, Any, Any]) -> None:
        await self.sweep()

    async def _on_poll(self, context: CallbackContext[Any, Any, Any, Any]) -> None:
        self.kick()

    async def sweep(self) -> None:
        """Warnings due, attempts overdue, then pending notifications (lease holder only)."""
        held, fresh = await self.lease.renew()
        if not held:
            return
        if fresh:
            await self.rearm()
        await self.service.exams.due_warnings()  # queued in the outbox, sent by deliver()
        closed = await self.service.exams.close_expired()
        for attempt_id in closed:
            self.disarm(attempt_id)
        self.kick()

    async def deliver(self) -> int:
        """Send pending notifications from the outbox; returns how many were sent.

        Up to DELIVERY_CONCURRENCY are in flight at once, paced by each sender's throttle;
        more are claimed whenever half of them are done. Each notification is handled on
        its own and never holds back the others: a transient failure is retried after a
        back-off for as long as the notification is valid; only a final answer of the
        platform (blocked, chat not found, a refused request) ends it unsent.
        """
        sent = 0
        async with self._delivering:
            # In flight by id: a claim that ran out while its send waited (429 pauses) comes
            # back in a later claim, and must not be sent a second time by this process.
            inflight: dict[int, asyncio.Task[int]] = {}
            renew = False  # the sweep has just renewed the lease; later rounds renew it
            try:
                while not self._stopping and self.lease.holding:
                    if renew:
                        # A long delivery keeps the lease alive, and stops if it was lost.
                        held, _ = await self.lease.renew()
                        if not held:
                            break
                    renew = True
                    want = DELIVERY_CONCURRENCY - len(inflight)
                    batch = await self.service.outbox.claim(self.owner, want)
                    for note in batch:
                        if note.id not in inflight:
                            inflight[note.id] = asyncio.create_task(self._deliver_one(note))
                    if not inflight:
                        break
                    # Drained: finish what is in flight, then look once more.
                    floor = DELIVERY_CONCURRENCY // 2 if len(batch) == want else 0
                    while len(inflight) > floor:
                        done, _ = await asyncio.wait(
                            inflight.values(), return_when=asyncio.FIRST_COMPLETED
                        )
                        sent += self._settle(inflight, done)
            except asyncio.CancelledError:
                # Stopping: an unsent row's claim runs out and it is sent again later.
                for task in inflight.values():
                    task.cancel()
                await asyncio.gather(*inflight.values(), return_exceptions=True)
                raise
            finally:
                # The lease was lost, the database failed, or shutdown began: what this
                # process claimed and started still goes out (cancelling mid-way would
                # send it twice), unless it is cancelled meanwhile.
                if inflight:
                    try:
                        await asyncio.wait(inflight.values())
                    except asyncio.CancelledError:
                        for task in inflight.values():
                            task.cancel()
                        await asyncio.gather(*inflight.values(), return_exceptions=True)
                        raise
                    sent += self._settle(inflight, set(inflight.values()))
        return sent

    @staticmethod
    def _settle(inflight: dict[int, asyncio.Task[int]], done: set[asyncio.Task[int]]) -> int:
        """Take finished sends out of ``inflight``; how many were sent."""
        sent = 0
        for note_id, task in list(inflight.items()):
            if task not in done:
                continue
            del inflight[note_id]
            if task.cancelled():
                continue
            error = task.exception()
            if error is not None:  # _deliver_one handles send errors: this is a bug
                log.error("notification %s: %s", note_id, error, exc_info=error)
            else:
                sent += task.result()
        return sent

    async def _deliver_one(self, note: Notification) -> int:
        try:
            notice = await render(self.service, note)
            if notice is None:  # nothing left to say (a warning for an attempt over)
                await self.service.outbox.ended(note.id, "skipped")
                return 0
            account = await self.service.outbox.recipient(note.person_id, self.senders)
            if account is None:
                await self.service.outbox.ended(note.id, "skipped", "no account to send to")
                return 0
            await self.senders[account.channel].deliver(account, notice)
            await self.service.outbox.sent(note.id)
            return 1
        except Unreachable as exc:
            # Blocked by the person, or the chat is gone: sending again would fail again.
            log.info("notification %s: the person cannot be reached", note.id)
            await self.service.outbox.ended(note.id, "blocked", str(exc))
            await self.service.outbox.unreachable(note.person_id)
        except Refused as exc:
            log.warning("notification %s refused by the platform", note.id)
            await self.service.outbox.ended(note.id, "refused", str(exc))
        except Exception as exc:  # network trouble, 5xx, 429 after retries, or a bug
            # Only the kind and the platform's own words: a transport error can quote the URL.
            detail = f": {exc.message}" if isinstance(exc, TelegramError) else ""
            when = await self.service.outbox.retry(note, type(exc).__name__ + detail)
            log.warning(
                "notification %s failed (try %d): %s; next try at %s",
                note.id,
                note.tries,
                type(exc).__name__,
                when.strftime("%H:%M:%S"),
            )
        return 0


def _log_failure(task: asyncio.Task[int]) -> None:
    """The next poll starts a new delivery; a database outage would repeat this every
    second, so the traceback is for --log-level DEBUG."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("sending from the outbox failed: %s", type(error).__name__)
        log.debug("sending from the outbox failed", exc_info=error)
