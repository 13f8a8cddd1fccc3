"""Broadcasts: an organiser's message to a segment of contestants (everyone registered,
those without an attempt, those with one attempt left, a kind of unit, one unit, the focal
persons), previewed with its recipient count, then confirmed.

Confirming is a compare-and-set on the draft (a double, stale or forged confirm changes
nothing) and, in the same transaction, the fan-out: one outbox row per recipient (key
``broadcast:<id>:<person>``, one INSERT … SELECT), persons who blocked the bot and locked
ones left out, and the audit entry. The outbox sends them at the pace allowed, behind
results and warnings, at least once and without duplicates across restarts. The sender
asks ``progress()`` every few seconds: it keeps the organiser's progress message up to
date and, once every row has ended, closes the broadcast and queues the closing report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from contest.errors import ContestError
from contest.model import Unit
from contest.ports import (
    Audience,
    Broadcast,
    BroadcastCounts,
    Segment,
    SegmentKind,
    UnitOfWork,
)
from contest.usecases.base import Context, UseCase
from contest.usecases.staff import Actor, audit

BROADCAST_NOTIFICATION = "broadcast"
BROADCAST_REPORT = "broadcast_report"
# A broadcast is worth delivering for this long; a transient failure is retried until then.
BROADCAST_VALID_FOR = timedelta(days=2)
# A preview older than this is not confirmed (its recipient count is out of date).
DRAFT_VALID_FOR = timedelta(hours=1)
MAX_TEXT_LENGTH = 3000  # characters the organiser may type (a message holds 4,096)
ROUND = 1  # the segments about attempts look at round 1
_TEXT_CACHE_SIZE = 64


@dataclass(frozen=True)
class Preview:
    broadcast: Broadcast
    audience: Audience
    unit: Unit | None = None  # the unit of a one-unit segment


@dataclass(frozen=True)
class Progress:
    broadcast: Broadcast
    counts: BroadcastCounts
    finished: bool  # every row has ended: closed now, its report queued


class Broadcasts(UseCase):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._texts: dict[int, str] = {}

    async def audience(self, segment: Segment) -> Audience:
        """Who a broadcast to the segment would reach now."""
        async with self.uow(write=False) as uow:
            await self._check(uow, segment)
            return await uow.broadcasts.audience(segment, ROUND, self.rules.round1.attempts)

    async def unit_by_code(self, code: str) -> Unit:
        async with self.uow(write=False) as uow:
            unit = await uow.units.by_code(code.strip().upper())
        if unit is None:
            raise ContestError("unit_code_unknown", unit_code=code.strip()[:40])
        return unit

    async def unit(self, unit_id: int) -> Unit | None:
        async with self.uow(write=False) as uow:
            return await uow.units.get(unit_id)

    async def draft(self, actor: Actor, segment: Segment, text: str) -> Preview:
        """Keep the message as a draft and say whom it would reach; nothing is sent."""
        body = text.strip()
        if not body:
            raise ContestError("broadcast_empty")
        if len(body) > MAX_TEXT_LENGTH:
            raise ContestError("broadcast_too_long", limit=MAX_TEXT_LENGTH, length=len(body))
        now = self.clock.now()
        async with self.uow() as uow:
            unit = await self._check(uow, segment)
            found = await uow.broadcasts.audience(segment, ROUND, self.rules.round1.attempts)
            broadcast_id = await uow.broadcasts.create(
                created_by=actor.key, now=now, segment=segment, text=body, total=found.recipients
            )
            await audit(
                uow,
                now,
                actor,
                "broadcast_draft",
                "ok",
                target=f"broadcast:{broadcast_id}",
                detail={"segment": _segment_detail(segment), "recipients": found.recipients},
            )
            broadcast = await uow.broadcasts.get(broadcast_id)
            await uow.commit()
        assert broadcast is not None
        return Preview(broadcast, found, unit)

    async def confirm(self, actor: Actor, broadcast_id: int) -> Broadcast:
        """Send the draft: the compare-and-set, the fan-out to the outbox and the audit
        entry in one transaction. Anything but its author's fresh draft changes nothing."""
        now = self.clock.now()
        async with self.uow() as uow:
            broadcast = await uow.broadcasts.get(broadcast_id)
            if broadcast is None:
                raise ContestError("broadcast_unknown")
            started = await uow.broadcasts.start(
                broadcast_id,
                actor.key,
                now,
                drafted_after=now - DRAFT_VALID_FOR,
                report_to=actor.account,
            )
            if not started:
                raise ContestError(_why_not(broadcast, actor))
            count = await uow.broadcasts.fan_out(
                broadcast,
                BROADCAST_NOTIFICATION,
                now,
                now + BROADCAST_VALID_FOR,
                round=ROUND,
                attempts=self.rules.round1.attempts,
            )
            await audit(
                uow,
                now,
                actor,
                "broadcast_confirm",
                "ok",
                target=f"broadcast:{broadcast_id}",
                detail={"segment": _segment_detail(broadcast.segment), "recipients": count},
            )
            sent = await uow.broadcasts.get(broadcast_id)
            await uow.commit()
        assert sent is not None
        return sent

    async def cancel(self, actor: Actor, broadcast_id: int) -> None:
        now = self.clock.now()
        async with self.uow() as uow:
            broadcast = await uow.broadcasts.get(broadcast_id)
            if broadcast is None:
                raise ContestError("broadcast_unknown")
            if not await uow.broadcasts.cancel(broadcast_id, actor.key):
                raise ContestError(_why_not(broadcast, actor))
            await audit(
                uow, now, actor, "broadcast_cancel", "ok", target=f"broadcast:{broadcast_id}"
            )
            await uow.commit()

    async def get(self, broadcast_id: int) -> tuple[Broadcast, Unit | None] | None:
        """A broadcast, with the unit its segment names (if one)."""
        async with self.uow(write=False) as uow:
            broadcast = await uow.broadcasts.get(broadcast_id)
            if broadcast is None:
                return None
            unit_id = broadcast.segment.unit_id
            unit = await uow.units.get(unit_id) if unit_id is not None else None
        return broadcast, unit

    async def text_of(self, broadcast_id: int) -> str | None:
        """The text of a confirmed broadcast (None: no such broadcast being sent). Read
        once per broadcast: it never changes once confirmed, and 10,000 rows share it."""
        cached = self._texts.get(broadcast_id)
        if cached is not None:
            return cached
        async with self.uow(write=False) as uow:
            broadcast = await uow.broadcasts.get(broadcast_id)
        if broadcast is None or broadcast.status not in ("sending", "done"):
            return None
        if len(self._texts) >= _TEXT_CACHE_SIZE:
            self._texts.clear()
        self._texts[broadcast_id] = broadcast.text
        return broadcast.text

    async def progress(self) -> list[Progress]:
        """The broadcasts being sent, with their counts. One whose every row has ended is
        closed here (a compare-and-set) with its closing report queued to the organiser,
        in one transaction: the report goes out once, through the outbox."""
        now = self.clock.now()
        async with self.uow(write=False) as uow:
            sending = await uow.broadcasts.sending()
            counted = [(b, await uow.broadcasts.counts(b, BROADCAST_NOTIFICATION)) for b in sending]
        found: list[Progress] = []
        for broadcast, counts in counted:
            finished = False
            if counts.pending == 0:
                async with self.uow() as uow:
                    finished = await uow.broadcasts.finish(broadcast.id, now)
                    if finished and broadcast.report_to is not None:
                        await uow.outbox.add(
                            f"{BROADCAST_REPORT}:{broadcast.id}",
                            None,
                            BROADCAST_REPORT,
                            {
                                "broadcast_id": broadcast.id,
                                "to": str(broadcast.report_to),
                                "delivered": counts.delivered,
                                "blocked": counts.blocked,
                                "failed": counts.failed,
                            },
                            now,
                            expires_at=now + BROADCAST_VALID_FOR,
                        )
                    await uow.commit()
            found.append(Progress(broadcast, counts, finished))
        return found

    async def progress_posted(self, broadcast_id: int, message_id: int | None) -> None:
        """The progress message of a broadcast (to edit from then on)."""
        async with self.uow() as uow:
            await uow.broadcasts.set_report_message(broadcast_id, message_id)
            await uow.commit()

    async def _check(self, uow: UnitOfWork, segment: Segment) -> Unit | None:
        """The unit a one-unit segment names (which must exist)."""
        if segment.kind is SegmentKind.UNIT_KIND and segment.unit_kind is None:
            raise ContestError("bad_segment")
        if segment.kind is not SegmentKind.UNIT:
            return None
        unit = await uow.units.get(segment.unit_id) if segment.unit_id is not None else None
        if unit is None:
            raise ContestError("bad_segment")
        return unit


def _why_not(broadcast: Broadcast, actor: Actor) -> str:
    """Why a confirm or cancel changed nothing."""
    if broadcast.status in ("sending", "done"):
        return "broadcast_already_sent"
    if broadcast.status == "cancelled":
        return "broadcast_cancelled"
    if broadcast.created_by != actor.key:
        return "broadcast_not_yours"
    return "broadcast_stale"


def _segment_detail(segment: Segment) -> dict[str, object]:
    detail: dict[str, object] = {"kind": segment.kind.value}
    if segment.unit_kind is not None:
        detail["unit_kind"] = segment.unit_kind.value
    if segment.unit_id is not None:
        detail["unit_id"] = segment.unit_id
    return detail
