"""Deadlines of attempts. The database decides; timers only make it happen on time.

* ``arm`` puts one job per attempt on PTB's JobQueue at its deadline;
* a periodic sweep closes whatever is overdue (timers lost in a restart, another
  process's attempts, a clock that moved) and queues the 5- and 1-minute warnings;
  results and warnings are sent from the outbox, so a failed send is retried;
* on start-up ``rearm`` arms every open attempt and sweeps at once, so attempts whose
  deadline passed while the bot was down are closed and their results sent.
Closing is a compare-and-set in the database, so exactly one path closes an attempt.

With several processes, only the holder of the scheduler lease of its channels sweeps, re-arms
everything and sends from the outbox (so the bulk pace, 30 messages/s, holds overall);
when it dies, the next process to renew takes the lease over and re-arms. Every process
still arms the attempts it starts itself (the compare-and-set keeps that safe), so
deadlines stay punctual wherever an attempt began; the holder looks at the outbox every
second and sends their results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from datetime import datetime
from typing import Any, Protocol

from telegram.error import TelegramError
from telegram.ext import CallbackContext, Job, JobQueue

import contest.ui.exam_notices  # noqa: F401  (registers the notices of attempts)
from contest.model import Account, Channel
from contest.ports import Notification
from contest.services import ContestService
from contest.ui.console.broadcasts import progress_text  # (and its notices)
from contest.ui.notices import Notice, Refused, Unreachable, render
from contest.usecases.outbox import REACHABILITY_REFRESH_SECONDS, Outbox
from scheduler.lease import LeaseGuard, holder_name

log = logging.getLogger(__name__)

# A late timer must still run: APScheduler's default misfire grace is 1 s.
JOB_KWARGS: dict[str, Any] = {"misfire_grace_time": None, "coalesce": True}
# Notifications in flight at once. Each one waits for its send slots (about 30 messages/s
# overall, and a second between the two messages of a result, which go to the same chat),
# so they must overlap to reach the overall pace; the bulk connection pool has this size.
DELIVERY_CONCURRENCY = 32
# Claimed rows waiting for a free send, beyond those in flight: half a second's worth at the
# senders' pace (none at 30/s, so a claim (60 s) never runs out unsent and a result claimed
# later waits behind a second of sends at most), up to this many when pacing is lifted.
DELIVERY_BACKLOG_MAX = 512
DELIVERY_BACKLOG_SECONDS = 0.5
# Rows sent are marked sent together: this many at a time, or this long after the first.
MARK_BATCH = 256
MARK_SECONDS = 0.1
MARK_RETRY_SECONDS = 1.0
PROGRESS_SECONDS = 3.0  # how often a broadcast's progress message may be edited
_NO_EDITS = object()  # a progress shown on a channel that cannot edit it
DELIVERY_POLL_SECONDS = 1.0  # how often the lease holder looks at the outbox
STOP_GRACE_SECONDS = 5.0  # at shutdown, for the sends in flight


# The channels a notification can be delivered on (the command line is never a recipient).
DELIVERY_CHANNELS = frozenset({Channel.TELEGRAM, Channel.ZALO})


def scheduler_lease(channels: Iterable[Channel]) -> str:
    """The scheduler lease of a process sending on ``channels``: one holder per set of
    channels, so a Telegram process and a Zalo process on one database each send their own
    channel's notifications (and each channel's pace holds across its processes)."""
    return "scheduler:" + ",".join(sorted(c.value for c in channels))


class ChannelSender(Protocol):
    """Sends notices on one channel (Telegram, Zalo); raises Unreachable or Refused on a
    final answer of the platform, anything else on a transient failure."""

    channel: Channel

    @property
    def pace(self) -> float:
        """Messages per second it sends at, overall."""
        ...

    async def deliver(self, account: Account, notice: Notice) -> None: ...
    async def show(self, account: Account, notice: Notice, message_id: int | None) -> int | None:
        """Show a status message (a broadcast's progress): edit ``message_id`` if given and
        the channel can, else send it; the id to edit next time (None: none)."""
        ...


class SentMarks:
    """Notifications sent and not yet marked sent: marked together, MARK_BATCH at a time or
    MARK_SECONDS after the first, in one transaction (1,000 sends a second cost a few
    transactions, not 1,000). A row is marked only after its send succeeded; a crash before
    the mark sends it again once its claim runs out (at least once), never loses it."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._waiting: list[int] = []
        self.unmarked: set[int] = set()  # sent, not marked yet: never started again
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None

    def add(self, notification_id: int) -> None:
        self._waiting.append(notification_id)
        self.unmarked.add(notification_id)
        if len(self._waiting) >= MARK_BATCH:
            self._write_soon()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(MARK_SECONDS, self._write_soon)

    def _write_soon(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write(), name="outbox-marks")

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._outbox.sent_many(batch)
            except Exception as exc:  # the database: try again in a moment
                self._waiting = batch + self._waiting
                log.error("could not mark %d notifications sent: %s", len(batch), exc)
                if self._timer is None:
                    loop = asyncio.get_running_loop()
                    self._timer = loop.call_later(MARK_RETRY_SECONDS, self._write_soon)
                return
            self.unmarked.difference_update(batch)

    async def close(self) -> None:
        """Mark what is waiting now (the end of a delivery)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)
        await self._write()
        if self._timer is not None:  # still failing: the rows are sent again later
            self._timer.cancel()
            self._timer = None


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
        # A process that sends on some channels only claims the notifications it can
        # deliver: another process (its own lease) sends the others.
        served = frozenset(self.senders)
        self._claim_channels = None if served >= DELIVERY_CHANNELS else served
        self.job_queue = job_queue
        self.lease = lease
        self.sweep_seconds = sweep_seconds
        self.owner = lease.holder
        self._jobs: dict[int, Job[Any]] = {}
        self._delivering = asyncio.Lock()
        self._delivery: asyncio.Task[int] | None = None
        self._stopping = False
        self._shown: dict[int, object] = {}  # broadcast id -> the progress last shown
        self._reachability_read = False  # read while holding the lease: kept up to date

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
        self.job_queue.run_repeating(
            self._on_progress,
            interval=PROGRESS_SECONDS,
            name="broadcast-progress",
            job_kwargs=JOB_KWARGS,
        )
        # Every process: who is marked unreachable (cleared when they write again).
        self.job_queue.run_repeating(
            self._on_reachability,
            interval=REACHABILITY_REFRESH_SECONDS,
            first=0.0,
            name="reachability",
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

    async def _on_progress(self, context: CallbackContext[Any, Any, Any, Any]) -> None:
        if self._stopping or not self.lease.holding:
            return
        try:
            await self.report_progress()
        except Exception as exc:  # the database or the platform: next time
            log.warning("broadcast progress failed: %s", type(exc).__name__)

    async def _on_reachability(self, context: CallbackContext[Any, Any, Any, Any]) -> None:
        """Read who is marked unreachable: once while this process holds the lease (it is
        the one sending, so it marks them itself), every REACHABILITY_REFRESH_SECONDS
        otherwise (the holder, another process, marks them). A scan of the persons: 40 ms
        for 100,000 on SQLite."""
        holding = self.lease.holding
        if holding and self._reachability_read:
            return
        try:
            await self.service.outbox.load_unreachable()
        except Exception as exc:
            log.warning("could not read who is unreachable: %s", type(exc).__name__)
            return
        self._reachability_read = holding

    async def report_progress(self) -> None:
        """Keep each broadcast's progress message up to date (edited when its counts
        changed); a broadcast whose every row has ended is closed and its report queued."""
        finished = False
        for progress in await self.service.broadcasts.progress():
            broadcast = progress.broadcast
            finished = finished or progress.finished
            shown = (progress.counts, progress.finished)
            account = broadcast.report_to
            sender = self.senders.get(account.channel) if account is not None else None
            before = self._shown.get(broadcast.id)
            if account is None or sender is None or before == shown:
                continue
            if before is _NO_EDITS and not progress.finished:
                continue  # a channel without edits: the first state and the last only
            text = progress_text(broadcast, progress.counts, finished=progress.finished)
            try:
                message_id = await sender.show(account, Notice(text), broadcast.report_message_id)
            except Exception as exc:  # best effort: the closing report is durable
                log.info("could not show a broadcast's progress: %s", type(exc).__name__)
                continue
            if message_id != broadcast.report_message_id:
                await self.service.broadcasts.progress_posted(broadcast.id, message_id)
            if progress.finished:
                self._shown.pop(broadcast.id, None)
            else:
                self._shown[broadcast.id] = shown if message_id is not None else _NO_EDITS
        if finished:
            self.kick()  # the closing reports wait in the outbox

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
        more are claimed whenever half of what was claimed is done (with pacing lifted, a
        backlog of claimed rows waits for free sends: fewer, bigger claims). Each
        notification is handled on its own and never holds back the others: a transient
        failure is retried after a back-off for as long as the notification is valid; only
        a final answer of the platform (blocked, chat not found, a refused request) ends it
        unsent. Rows sent are marked sent in batches (``SentMarks``).
        """
        sent = 0
        async with self._delivering:
            marks = SentMarks(self.service.outbox)
            # In flight by id: a claim that ran out while its send waited (429 pauses) comes
            # back in a later claim, and must not be sent a second time by this process.
            inflight: dict[int, asyncio.Task[int]] = {}
            backlog: dict[int, Notification] = {}  # claimed, waiting for a free send
            capacity = DELIVERY_CONCURRENCY + self._backlog_size()
            renew = False  # the sweep has just renewed the lease; later rounds renew it
            try:
                while not self._stopping and self.lease.holding:
                    if renew:
                        # A long delivery keeps the lease alive, and stops if it was lost.
                        held, _ = await self.lease.renew()
                        if not held:
                            break
                    renew = True
                    room = capacity - len(inflight) - len(backlog)
                    batch = await self.service.outbox.claim(
                        self.owner, room, channels=self._claim_channels
                    )
                    for note in batch:
                        known = note.id in inflight or note.id in backlog
                        if not known and note.id not in marks.unmarked:
                            backlog[note.id] = note
                    self._start_sends(backlog, inflight, marks)
                    if not inflight:
                        break
                    # Drained: finish what is in flight, then look once more.
                    floor = capacity // 2 if len(batch) == room else 0
                    while inflight and len(inflight) + len(backlog) > floor:
                        done, _ = await asyncio.wait(
                            inflight.values(), return_when=asyncio.FIRST_COMPLETED
                        )
                        sent += self._settle(inflight, done)
                        self._start_sends(backlog, inflight, marks)
            except asyncio.CancelledError:
                # Stopping: an unsent row's claim runs out and it is sent again later.
                for task in inflight.values():
                    task.cancel()
                await asyncio.gather(*inflight.values(), return_exceptions=True)
                await _quietly(marks.close())
                raise
            finally:
                if backlog:  # never tried: offered again at once, here or elsewhere
                    await _quietly(self.service.outbox.release(list(backlog.values())))
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
                        await _quietly(marks.close())
                        raise
                    sent += self._settle(inflight, set(inflight.values()))
                await marks.close()
        return sent

    def _backlog_size(self) -> int:
        """Claimed rows that may wait beyond those in flight: half a second at the pace of
        the slowest sender, less what is in flight, within [0, DELIVERY_BACKLOG_MAX]."""
        pace = min((sender.pace for sender in self.senders.values()), default=0.0)
        wanted = int(pace * DELIVERY_BACKLOG_SECONDS) - DELIVERY_CONCURRENCY
        return max(0, min(DELIVERY_BACKLOG_MAX, wanted))

    def _start_sends(
        self,
        backlog: dict[int, Notification],
        inflight: dict[int, asyncio.Task[int]],
        marks: SentMarks,
    ) -> None:
        """Start claimed notifications while sends are free (none once stopping)."""
        while backlog and len(inflight) < DELIVERY_CONCURRENCY and not self._stopping:
            note_id = next(iter(backlog))
            note = backlog.pop(note_id)
            inflight[note_id] = asyncio.create_task(self._deliver_one(note, marks))

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

    async def _deliver_one(self, note: Notification, marks: SentMarks) -> int:
        account: Account | None = None
        try:
            notice = await render(self.service, note)
            if notice is None:  # nothing left to say (a warning for an attempt over)
                await self.service.outbox.ended(note.id, "skipped")
                return 0
            if notice.defer_until is not None:  # not now (quiet hours): back until then
                await self.service.outbox.postpone(note, notice.defer_until)
                return 0
            account = await self.service.outbox.recipient(note, self.senders)
            if account is None:
                await self.service.outbox.ended(note.id, "skipped", "no account to send to")
                return 0
            await self.senders[account.channel].deliver(account, notice)
            marks.add(note.id)  # marked sent with others, within MARK_SECONDS
            return 1
        except Unreachable as exc:
            # Blocked by the person, or the chat is gone: sending again would fail again.
            # A person linked on another channel is reached there instead (once: a second
            # refusal there ends it).
            if (
                account is not None
                and note.tries <= 1
                and await self.service.outbox.reroute(note, account, self.senders.keys())
            ):
                log.info("notification %s: blocked on one channel, sent on another", note.id)
                return 0
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


async def _quietly(step: Awaitable[None]) -> None:
    """Bookkeeping at the end of a delivery: a failure is logged, never raised over the
    delivery's own outcome (the rows concerned are claimed again once their claims end)."""
    try:
        await step
    except Exception as exc:
        log.warning("outbox bookkeeping failed: %s", type(exc).__name__)


def _log_failure(task: asyncio.Task[int]) -> None:
    """The next poll starts a new delivery; a database outage would repeat this every
    second, so the traceback is for --log-level DEBUG."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("sending from the outbox failed: %s", type(error).__name__)
        log.debug("sending from the outbox failed", exc_info=error)
