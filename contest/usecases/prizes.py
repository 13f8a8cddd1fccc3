"""Prizes (``/giaithuong``): allocated from round-2 results by the tie rule in force,
[prizes] counts in order (1 first, 2 second, 3 third, 4 consolation by default).

Only confirmed qualifiers with a finished round-2 attempt are ranked: a qualifier who did
not sit round 2 gets nothing. A tie on a prize boundary (two persons sharing a rank across
the line between two prizes, or between the last prize and no prize) is never settled
silently: the preview names it, and the confirmation must say it accepts the tie rule's
last word (the earlier submission) for it; a plain confirm is refused while such a tie
stands (the organisers may settle it otherwise before confirming; round 2 asks no
prediction, so its ties go by time). Confirming is a compare-and-set (a ``contest_state``
key, and the preview's fingerprint), audited, and queues one notice per winner through the
outbox.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from contest.errors import ContestError
from contest.ports import PersonLabel, UnitOfWork
from contest.ports_round2 import Confirmed, Queued
from contest.round2 import CutTie, fingerprint, prize_ties
from contest.scoring import Ranked, TieRule, allocate_prizes
from contest.usecases.base import Context, UseCase
from contest.usecases.predictions import ranked_in, tie_rule_in
from contest.usecases.staff import Actor, audit

PRIZES_KEY = "prizes:confirmed"
PRIZE_NOTIFICATION = "prize_award"
PRIZE_VALID_FOR = timedelta(days=30)

# Writes an XLSX workbook of one sheet: the header, then the rows (set by the assembly).
SheetWriter = Callable[[str, Sequence[str], Sequence[Sequence[object]]], bytes]


@dataclass(frozen=True)
class Allocation:
    rule: TieRule
    awarded: list[tuple[str, Ranked]]  # (prize, ranked round-2 result)
    ties: list[CutTie]
    absent: list[int]  # qualifiers without a round-2 result (no prize)
    ranked: int
    labels: dict[int, PersonLabel]
    digest: str
    confirmed: list[Confirmed]  # once confirmed
    locked: list[int] = field(default_factory=list)  # qualifiers locked out (no prize)


class Prizes(UseCase):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.sheet_writer: SheetWriter | None = None  # set by the assembly (storage)

    async def preview(self) -> Allocation:
        """The allocation round 2 gives now, or the confirmed one."""
        async with self.uow(write=False) as uow:
            confirmed = await uow.round2.prizes()
            if not confirmed:
                await self._check_round2_over(uow)
            return await self._allocate(uow, confirmed)

    async def _check_round2_over(self, uow: UnitOfWork) -> None:
        if not await uow.round2.qualifiers():
            raise ContestError("qualifiers_not_confirmed")
        window = self.rules.round2.round.window
        if not window.is_after(self.clock.now()):
            raise ContestError("round2_not_over", closes=window.closes)
        still = await uow.round2.open_attempts(2)
        if still:
            raise ContestError("round2_attempts_open", count=still)

    async def _allocate(self, uow: UnitOfWork, confirmed: list[Confirmed]) -> Allocation:
        rule = await tie_rule_in(uow, self.rules, 2)
        qualifiers = {q.person_id for q in await uow.round2.qualifiers()}
        ranked = await ranked_in(uow, self.rules, 2, only=qualifiers)
        results = [r.result for r in ranked]
        awarded = allocate_prizes(ranked, self.rules.prizes)
        ties = prize_ties(ranked, self.rules.prizes)
        sat = {r.person_id for r in results}
        absent: list[int] = []
        locked: list[int] = []
        for person_id in sorted(qualifiers - sat):  # locked persons are out of the ranking
            person = await uow.persons.get(person_id)
            (locked if person is not None and person.locked else absent).append(person_id)
        shown = {r.result.person_id for _, r in awarded} | set(absent) | set(locked)
        shown |= {r.result.person_id for t in ties for r in t.inside + t.outside}
        shown |= {c.person_id for c in confirmed}
        labels = await uow.stats.labels(sorted(shown))
        digest = fingerprint(
            [(r.result.person_id, r.result.attempt_id, r.rank, len(p)) for p, r in awarded]
        )
        return Allocation(
            rule, awarded, ties, absent, len(ranked), labels, digest, confirmed, locked
        )

    async def confirm(self, actor: Actor, digest: str, *, accept_ties: bool) -> Allocation:
        """Confirm the allocation previewed (fingerprint ``digest``). With a tie on a
        boundary, ``accept_ties`` must say the earlier submission settles it."""
        async with self.uow() as uow:
            now = self.clock.now()
            if await uow.round2.prizes():
                raise ContestError("prizes_already_confirmed")
            await self._check_round2_over(uow)
            allocation = await self._allocate(uow, [])
            if digest != allocation.digest:
                raise ContestError("prizes_stale")
            if allocation.ties and not accept_ties:
                raise ContestError("prize_tie_unsettled")
            if not allocation.awarded:
                raise ContestError("no_prizes")
            state = json.dumps({"count": len(allocation.awarded), "digest": digest})
            if not await uow.round2.claim_state(PRIZES_KEY, state, now, actor.key):
                raise ContestError("prizes_already_confirmed")
            await uow.round2.add_prizes(
                [
                    (r.result.person_id, p, r.rank, r.result.attempt_id)
                    for p, r in allocation.awarded
                ],
                now,
                actor.key,
            )
            await uow.round2.queue(
                [
                    Queued(
                        f"{PRIZE_NOTIFICATION}:{r.result.person_id}",
                        r.result.person_id,
                        PRIZE_NOTIFICATION,
                        {
                            "prize": p,
                            "rank": r.rank,
                            "correct": r.result.correct,
                            "total": r.result.total,
                        },
                    )
                    for p, r in allocation.awarded
                ],
                now,
                now + PRIZE_VALID_FOR,
            )
            await audit(
                uow,
                now,
                actor,
                "prizes_confirm",
                "ok",
                target="prizes",
                detail={
                    "winners": len(allocation.awarded),
                    "ties_accepted": len(allocation.ties),
                    "absent": len(allocation.absent),
                },
            )
            confirmed = await uow.round2.prizes()
            await uow.commit()
        return Allocation(
            allocation.rule,
            allocation.awarded,
            allocation.ties,
            allocation.absent,
            allocation.ranked,
            allocation.labels,
            allocation.digest,
            confirmed,
        )

    async def workbook(self, actor: Actor) -> tuple[bytes, int]:
        """The confirmed prizes as an XLSX workbook (audited); and how many rows."""
        writer = self.sheet_writer
        if writer is None:
            raise ContestError("export_unavailable")
        prizes = self.rules.prizes
        amounts = {
            "first": prizes.first_amount,
            "second": prizes.second_amount,
            "third": prizes.third_amount,
            "consolation": prizes.consolation_amount,
        }
        order = {"first": 0, "second": 1, "third": 2, "consolation": 3}
        async with self.uow(write=False) as uow:
            confirmed = await uow.round2.prizes()
            if not confirmed:
                raise ContestError("prizes_not_confirmed")
            labels = await uow.stats.labels([c.person_id for c in confirmed])
            rows: list[list[object]] = []
            for c in sorted(confirmed, key=lambda c: (order.get(c.prize or "", 9), c.rank)):
                person = await uow.persons.get(c.person_id)
                attempt = await uow.attempts.get(c.attempt_id)
                label = labels.get(c.person_id, PersonLabel("", None, False))
                rows.append(
                    [
                        PRIZE_LABELS.get(c.prize or "", c.prize or ""),
                        c.rank,
                        label.full_name,
                        label.place or "",
                        person.phone if person else "",
                        attempt.correct_count if attempt else "",
                        round(attempt.duration_seconds or 0.0, 1) if attempt else "",
                        amounts.get(c.prize or "", 0),
                    ]
                )
        data = writer("Giải thưởng", HEADER, rows)
        async with self.uow() as uow:
            await audit(
                uow, self.clock.now(), actor, "prizes_export", "ok", detail={"rows": len(rows)}
            )
            await uow.commit()
        return data, len(rows)


PRIZE_LABELS = {
    "first": "Giải Nhất",
    "second": "Giải Nhì",
    "third": "Giải Ba",
    "consolation": "Giải Khuyến khích",
}
HEADER = (
    "Giải",
    "Hạng vòng 2",
    "Họ và tên",
    "Đơn vị / phường",
    "Số điện thoại",
    "Số câu đúng",
    "Thời gian (giây)",
    "Trị giá (đồng)",
)
