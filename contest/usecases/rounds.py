"""Qualification for round 2 and the round-2 hall.

Qualification (``/vongloai``): once round 1 is closed and no attempt of it is open, the
counting attempts (locked persons left out) are ranked by the tie rule in force; those
reaching ``min_ratio`` are eligible, the top ``qualifiers`` go on. A tie across the cut is
shown with what decided it (a shared rank means an equal score: the earlier submission
did); the organiser confirms either the list as the rule cut it or the list with everyone
tied at the cut. The confirmation is a compare-and-set (a ``contest_state`` key, plus the
proposal's fingerprint: a stale preview changes nothing), audited, and queues, in the same
short write transaction, an invitation to each qualifier; the ranking itself is read
before, in a read transaction, and a fingerprint of its inputs checked again in the write.
The final round-1 result with its rank band goes to everyone else who took part (one
outbox row each) in chunks of FINALS_CHUNK per transaction, so the write lock is never held
long; a ``contest_state`` marker stays pending until the last chunk, and the scheduler's
tick (``finish_finals``) completes a fan-out a crash interrupted, each key queued once.

Round 2: an organiser sets the session code (``/mavong2``: a salted hash in
``contest_state``, audited, the code itself never stored or logged). A qualifier types it
(at most CODE_TRIES wrong codes per CODE_WINDOW), then starts the attempt: the exam
service refuses anyone not on the confirmed list, or without the current code typed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contest.errors import ContestError
from contest.model import Account
from contest.ports import PersonLabel, UnitOfWork
from contest.ports_round2 import Confirmed, HallSeat, Queued
from contest.round2 import (
    CODE_RE,
    CutTie,
    code_matches,
    cut_tie,
    fingerprint,
    hash_code,
    normalize_code,
    rank_band,
)
from contest.scoring import Ranked, TieRule, qualify
from contest.usecases.base import Context, UseCase
from contest.usecases.predictions import official_figure, ranked_in, tie_rule_in
from contest.usecases.staff import Actor, audit

log = logging.getLogger(__name__)

QUALIFIERS_KEY = "round2:qualifiers"
# The final round-1 results of a confirmation: {"done": false} until all are queued.
FINALS_KEY = "round2:finals"
FINALS_CHUNK = 5_000  # final results queued per write transaction
CODE_KEY = "round2:code"

INVITE_NOTIFICATION = "round2_invite"
FINAL_NOTIFICATION = "round1_final"
# The final round-1 results are told for this long (a transient failure retried meanwhile).
FINAL_VALID_FOR = timedelta(days=30)

CODE_TRIES = 5  # wrong codes allowed …
CODE_WINDOW = timedelta(minutes=10)  # … in this long

MODE_CUT = "cut"  # the list as the tie rule cut it
MODE_ALL = "all"  # with everyone tied at the cut


@dataclass(frozen=True)
class Proposal:
    """The qualifiers proposed now (or, once confirmed, the confirmed list)."""

    rule: TieRule
    ranked: int  # persons with a counting round-1 attempt (locked ones left out)
    eligible: int  # of them, reaching min_ratio
    qualified: list[Ranked]  # as the rule cut it
    tie: CutTie | None  # a tie across the cut
    labels: dict[int, PersonLabel]
    digest_cut: str
    digest_all: str
    confirmed: list[Confirmed]  # the confirmed list (empty until confirmed)
    ranking: list[Ranked] = field(default_factory=list, repr=False)  # everyone ranked

    @property
    def with_ties(self) -> list[Ranked]:
        return self.qualified + (self.tie.outside if self.tie else [])


@dataclass(frozen=True)
class Confirmation:
    qualifiers: int
    others: int  # final results queued to the others who took part


@dataclass(frozen=True)
class Entry:
    """Where a person stands before round 2."""

    state: str  # not_registered, not_qualified, not_open, closed, code_not_set, code_needed,
    # ready (code typed, may start), in_progress, done
    opens: datetime
    closes: datetime


class Rounds(UseCase):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.finals_chunk = FINALS_CHUNK
        self._finals_running = asyncio.Lock()  # one fan-out at a time in this process

    # ------------------------------------------------------------ qualification

    async def proposal(self) -> Proposal:
        """The qualifiers round 1 gives (refused before round 1 closes)."""
        async with self.uow(write=False) as uow:
            confirmed = await uow.round2.qualifiers()
            if not confirmed:
                await self._check_round1_over(uow)
            return await self._propose(uow, confirmed)

    async def _check_round1_over(self, uow: UnitOfWork) -> None:
        window = self.rules.round1.window
        if not window.is_after(self.clock.now()):
            raise ContestError("round1_not_closed", closes=window.closes)
        still = await uow.round2.open_attempts(1)
        if still:
            raise ContestError("round1_attempts_open", count=still)
        if self.rules.uses_prediction and await official_figure(uow) is None:
            # Without the official figure predictions separate nobody: a list cut by time
            # alone would be confirmed under a rule that says otherwise.
            raise ContestError("prediction_official_missing")

    async def _propose(self, uow: UnitOfWork, confirmed: list[Confirmed]) -> Proposal:
        r2 = self.rules.round2
        rule = await tie_rule_in(uow, self.rules, 1)
        ranked = await ranked_in(uow, self.rules, 1)
        eligible = sum(1 for r in ranked if r.result.ratio >= r2.min_ratio)
        found = qualify(ranked, r2.qualifiers, r2.min_ratio)
        tie = None
        if found.tied_at_cut:
            cut = ranked.index(found.qualified[-1]) + 1
            tie = cut_tie(ranked, cut, "qualifiers")
        with_ties = found.qualified + (tie.outside if tie else [])
        shown = {r.result.person_id for r in with_ties} | {c.person_id for c in confirmed}
        labels = await uow.stats.labels(sorted(shown))
        return Proposal(
            rule=rule,
            ranked=len(ranked),
            eligible=eligible,
            qualified=found.qualified,
            tie=tie,
            labels=labels,
            digest_cut=_digest(found.qualified),
            digest_all=_digest(with_ties),
            confirmed=confirmed,
            ranking=ranked,
        )

    async def confirm_qualifiers(self, actor: Actor, digest: str, mode: str) -> Confirmation:
        """Confirm the proposal previewed (its fingerprint ``digest``), as the rule cut it
        (MODE_CUT) or with everyone tied at the cut (MODE_ALL); queue the invitations, then
        the final results. Anything but the current, unconfirmed proposal changes
        nothing."""
        confirmed, ranking, chosen_ids, at = await self.confirm_only(actor, digest, mode)
        await self._queue_finals(ranking, chosen_ids, at)
        return Confirmation(confirmed, len(ranking) - confirmed)

    async def confirm_only(
        self, actor: Actor, digest: str, mode: str
    ) -> tuple[int, list[Ranked], set[int], datetime]:
        """The confirmation itself, without the final results' fan-out (left pending in
        ``contest_state``; ``finish_finals`` queues them): how many qualifiers, the
        ranking they were cut from, their ids, and when.

        The ranking (100,000 persons for a city) is read and ranked in a read
        transaction; the write transaction, kept short, checks that nothing it depends
        on changed meanwhile (a regrade, a recount, a lock, the official figure: a
        fingerprint computed in the database), then claims the confirmation and writes
        the qualifiers, their invitations and the pending marker of the final results."""
        if mode not in (MODE_CUT, MODE_ALL):
            raise ContestError("bad_button")
        async with self.uow(write=False) as uow:
            if await uow.round2.qualifiers():
                raise ContestError("qualifiers_already_confirmed")
            await self._check_round1_over(uow)
            inputs = await self._inputs(uow)
            proposal = await self._propose(uow, [])
        chosen = proposal.qualified if mode == MODE_CUT else proposal.with_ties
        expected = proposal.digest_cut if mode == MODE_CUT else proposal.digest_all
        if digest != expected:
            raise ContestError("qualifiers_stale")
        if not chosen:
            raise ContestError("no_qualifiers")
        invitations = [
            Queued(
                f"{INVITE_NOTIFICATION}:{r.result.person_id}",
                r.result.person_id,
                INVITE_NOTIFICATION,
                {"rank": r.rank, "correct": r.result.correct, "total": r.result.total},
            )
            for r in chosen
        ]
        others = proposal.ranked - len(chosen)
        async with self.uow() as uow:
            now = self.clock.now()
            # Round 1 was over when read (closed, no attempt open): no attempt of it can
            # start since, so only the fingerprint (scores, flags, locks) is checked here.
            if await self._inputs(uow) != inputs:
                raise ContestError("qualifiers_stale")  # changed since it was read
            state = json.dumps({"count": len(chosen), "digest": digest, "mode": mode})
            if not await uow.round2.claim_state(QUALIFIERS_KEY, state, now, actor.key):
                raise ContestError("qualifiers_already_confirmed")
            await uow.round2.add_qualifiers(
                [(r.result.person_id, r.rank, r.result.attempt_id) for r in chosen],
                now,
                actor.key,
            )
            await uow.round2.queue(invitations, now, now + FINAL_VALID_FOR)
            await uow.round2.put_state(
                FINALS_KEY, json.dumps({"done": False, "others": others}), now, actor.key
            )
            await audit(
                uow,
                now,
                actor,
                "qualifiers_confirm",
                "ok",
                target="round2",
                detail={
                    "qualifiers": len(chosen),
                    "mode": mode,
                    "tied_at_cut": len(proposal.tie.outside) if proposal.tie else 0,
                    "others": others,
                },
            )
            await uow.commit()
        log.info("round 2: %d qualifiers confirmed, %d others to be told", len(chosen), others)
        return len(chosen), proposal.ranking, {r.result.person_id for r in chosen}, now

    async def _inputs(self, uow: UnitOfWork) -> tuple[str, TieRule]:
        rule = await tie_rule_in(uow, self.rules, 1)
        return await uow.round2.ranking_inputs(1, self.rules.uses_prediction), rule

    async def finish_finals(self, *, max_chunks: int | None = None) -> int:
        """Queue the final round-1 results a confirmation left pending (after a crash or
        a restart; the scheduler's tick calls this). Each key is queued once whatever
        ran before: a result already queued is left alone. Returns how many were queued
        now (0: none pending, or another run of this process is at it).

        The ranking is read again: a regrade made after the confirmation shows in the
        results still to be queued (the qualifiers stay as confirmed)."""
        if self._finals_running.locked():
            return 0
        async with self.uow(write=False) as uow:
            stored = await uow.round2.state(FINALS_KEY)
            if stored is None or json.loads(stored[0]).get("done"):
                return 0
            confirmed = await uow.round2.qualifiers()
            ranking = await ranked_in(uow, self.rules, 1)
        at = confirmed[0].confirmed_at if confirmed else stored[1]
        chosen = {c.person_id for c in confirmed}
        return await self._queue_finals(ranking, chosen, at, max_chunks=max_chunks)

    async def finals_pending(self) -> bool:
        async with self.uow(write=False) as uow:
            stored = await uow.round2.state(FINALS_KEY)
        return stored is not None and not json.loads(stored[0]).get("done")

    async def _queue_finals(
        self,
        ranking: list[Ranked],
        chosen: set[int],
        confirmed_at: datetime,
        *,
        max_chunks: int | None = None,
    ) -> int:
        """Queue everyone's final result but the qualifiers', FINALS_CHUNK per write
        transaction (each short: other writers go in between); the last one marks the
        fan-out done. Returns how many rows were queued (a key taken is not counted)."""
        async with self._finals_running:
            total = len(ranking)
            first = self.rules.round2.qualifiers
            rows: list[Queued] = []
            for entry in ranking:
                person = entry.result.person_id
                if person in chosen:
                    continue
                low, high = rank_band(entry.rank, total, first)
                rows.append(
                    Queued(
                        f"{FINAL_NOTIFICATION}:{person}",
                        person,
                        FINAL_NOTIFICATION,
                        {
                            "correct": entry.result.correct,
                            "total": entry.result.total,
                            "seconds": entry.result.duration_seconds,
                            "band": [low, high],
                            "ranked": total,
                        },
                    )
                )
            size = max(1, self.finals_chunk)
            starts = list(range(0, len(rows), size)) or [0]
            queued = 0
            for n, start in enumerate(starts):
                if max_chunks is not None and n >= max_chunks:
                    return queued  # left pending (a test stops here as a crash would)
                last = n == len(starts) - 1
                async with self.uow() as uow:
                    now = self.clock.now()
                    queued += await uow.round2.queue(
                        rows[start : start + size], now, confirmed_at + FINAL_VALID_FOR
                    )
                    if last:
                        await uow.round2.put_state(
                            FINALS_KEY,
                            json.dumps({"done": True, "others": len(rows)}),
                            now,
                            "system",
                        )
                    await uow.commit()
            log.info("round 2: final results queued to %d others", queued)
            return queued

    # ------------------------------------------------------------ the session code

    async def code_set_at(self) -> datetime | None:
        async with self.uow(write=False) as uow:
            stored = await uow.round2.state(CODE_KEY)
        return stored[1] if stored else None

    async def set_code(self, actor: Actor, text: str) -> str:
        """Set (or change) the session code; returns it normalized. Audited without it."""
        code = normalize_code(text)
        if not CODE_RE.match(code):
            raise ContestError("code_format")
        salt, digest = hash_code(code)
        async with self.uow() as uow:
            now = self.clock.now()
            changed = await uow.round2.state(CODE_KEY) is not None
            await uow.round2.put_state(
                CODE_KEY, json.dumps({"salt": salt, "hash": digest}), now, actor.key
            )
            await audit(
                uow,
                now,
                actor,
                "round2_code",
                "ok",
                target="round2",
                detail={"changed": changed, "length": len(code)},
            )
            await uow.commit()
        return code

    async def entry(self, account: Account) -> Entry:
        """Where the person stands before round 2 (what ``/vong2`` shows)."""
        window = self.rules.round2.round.window
        async with self.uow(write=False) as uow:
            now = self.clock.now()
            person = await uow.persons.by_account(account)
            state = await self._entry_state(uow, person.id if person else None, now)
        return Entry(state, window.opens, window.closes)

    async def _entry_state(self, uow: UnitOfWork, person_id: int | None, now: datetime) -> str:
        r2 = self.rules.round2.round
        if person_id is None:
            return "not_registered"
        if not await uow.round2.is_qualifier(person_id):
            return "not_qualified"
        current = await uow.attempts.in_progress(person_id, 2)
        if current is not None and not current.expired_at(now):
            return "in_progress"
        if await uow.attempts.count_for(person_id, 2) >= r2.attempts:
            return "done"
        if r2.window.is_before(now):
            return "not_open"
        if r2.window.is_after(now):
            return "closed"
        stored = await uow.round2.state(CODE_KEY)
        if stored is None:
            return "code_not_set"
        if await uow.round2.code_passed(person_id, stored[1]):
            return "ready"
        return "code_needed"

    async def enter_code(self, account: Account, text: str) -> None:
        """Check the session code a qualifier typed. A wrong one changes nothing but the
        count of tries (CODE_TRIES per CODE_WINDOW); then ``code_wrong`` or
        ``code_rate_limited``."""
        async with self.uow(write=False) as uow:
            now = self.clock.now()
            person = await uow.persons.by_account(account)
            state = await self._entry_state(uow, person.id if person else None, now)
            if state in ("ready", "in_progress"):
                return  # typed already (the code is not asked again)
            if state != "code_needed":
                raise ContestError(f"round2_{state}")
            assert person is not None
            self._check_tries(await uow.round2.failed_tries(person.id, now - CODE_WINDOW), now)
            stored = await uow.round2.state(CODE_KEY)
            assert stored is not None
            saved = json.loads(stored[0])
        # The key derivation (deliberately slow) runs off the event loop and outside any
        # transaction: a hall of qualifiers typing at once holds no write lock for it.
        ok = await asyncio.to_thread(
            code_matches, normalize_code(text), str(saved["salt"]), str(saved["hash"])
        )
        async with self.uow() as uow:
            # Counted again in the write: two linked accounts trying at once stay within
            # the limit.
            failed = await uow.round2.failed_tries(person.id, now - CODE_WINDOW)
            self._check_tries(failed, now)
            await uow.round2.record_try(person.id, now, ok)
            await uow.commit()
        if not ok:
            left = CODE_TRIES - len(failed) - 1
            if left <= 0:
                raise ContestError("code_wrong_last", minutes=int(CODE_WINDOW.seconds // 60))
            raise ContestError("code_wrong", left=left)

    @staticmethod
    def _check_tries(failed: list[datetime], now: datetime) -> None:
        """``code_rate_limited`` once CODE_TRIES wrong codes fall in the last CODE_WINDOW."""
        if len(failed) >= CODE_TRIES:
            wait = failed[len(failed) - CODE_TRIES] + CODE_WINDOW - now
            minutes = max(1, -(-int(wait.total_seconds()) // 60))
            raise ContestError("code_rate_limited", minutes=minutes, tries=CODE_TRIES)

    async def hall(self) -> list[HallSeat]:
        """Every qualifier and their round-2 attempt now (the organisers' live view)."""
        async with self.uow(write=False) as uow:
            return await uow.round2.hall()


async def admit_round2(uow: UnitOfWork, person_id: int) -> str | None:
    """Why the exam service refuses a round-2 start (None: admitted): not on the confirmed
    list, no session code set, or the current code not typed by the person."""
    if not await uow.round2.is_qualifier(person_id):
        return "round2_not_qualified"
    stored = await uow.round2.state(CODE_KEY)
    if stored is None:
        return "round2_code_not_set"
    if not await uow.round2.code_passed(person_id, stored[1]):
        return "round2_code_needed"
    return None


def _digest(entries: list[Ranked]) -> str:
    return fingerprint([(r.result.person_id, r.result.attempt_id, r.rank) for r in entries])
