"""Fixing a question during the contest (organisers): correct its wording or its key, or
void it. Each fix is shown first with what it touches, then confirmed; the confirmation
makes the whole change in one transaction: the question, the re-grade of every answer
given to it, the scores and counting attempts, one message per person whose result
changed, the record in ``question_fixes`` and the audit entry.

* wording: the text and options change (the key stays at its position); nothing is
  re-graded;
* key: every answer already given to the question is graded again with the new key;
* void: the question counts as correct for everyone who drew it, answered or not, and new
  attempts no longer draw it.

Attempts in progress get their items re-graded too; their score is computed when they end,
as usual, and an answer given after a void counts as correct (``VOIDED_KEY``).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from contest.errors import ContestError
from contest.importing import QUESTION_COLUMNS, validate_questions
from contest.model import AttemptResult, Question
from contest.ports import (
    FIX_KEY,
    FIX_VOID,
    FIX_WORDING,
    FixImpact,
    FixNotice,
    QuestionFix,
    QuestionState,
    Regraded,
    UnitOfWork,
)
from contest.scoring import best_result
from contest.text import fold
from contest.usecases.base import UseCase
from contest.usecases.outbox import RESULT_VALID_FOR
from contest.usecases.predictions import official_figure
from contest.usecases.staff import Actor, audit

log = logging.getLogger(__name__)

FIX_NOTIFICATION = "result_changed"
PENDING_FIX = "fix:"
PENDING_FOR = timedelta(hours=1)  # a fix shown for review can be confirmed this long
SEARCH_LIMIT = 8
MIN_QUERY = 3  # characters of a text search
_OPTION_LINE = re.compile(r"^\s*([ABCabc])\s*[.):]\s*(.*)$")


@dataclass(frozen=True)
class Change:
    """What a fix does: a ``kind`` of contest.ports.FIX_*, with its new values."""

    kind: str
    text: str | None = None  # wording
    options: tuple[str, str, str] | None = None  # wording
    key: int | None = None  # key: the new key (0..2)


@dataclass(frozen=True)
class Found:
    questions: list[QuestionState]  # at most SEARCH_LIMIT
    total: int


@dataclass(frozen=True)
class QuestionView:
    state: QuestionState
    impact: FixImpact  # who drew it


@dataclass(frozen=True)
class FixPreview:
    token: str
    state: QuestionState
    change: Change
    impact: FixImpact


@dataclass(frozen=True)
class FixDone:
    fix_id: int
    state: QuestionState  # before the fix
    change: Change
    impact: FixImpact
    regraded: Regraded | None  # None for a wording fix


@dataclass(frozen=True)
class RoundResults:
    round: int
    results: list[AttemptResult]  # finished attempts, by number
    best: AttemptResult | None


@dataclass(frozen=True)
class ResultChange:
    """What a person is told after a fix: its kind and their results now."""

    kind: str
    rounds: list[RoundResults]


def snapshot(state: QuestionState) -> dict[str, Any]:
    """The question as a fix saw it: a confirmation checks it has not changed since."""
    q = state.question
    return {
        "topic": q.topic,
        "text": q.text,
        "options": list(q.options),
        "answer": q.answer,
        "active": state.active,
        "voided": state.voided,
    }


def parse_wording(typed: str, current: Question) -> tuple[str, tuple[str, str, str]]:
    """The new text and options typed by an organiser: the question's text, then any of
    the lines ``A. …``, ``B. …``, ``C. …`` (an option not typed stays as it is; only
    options typed: the text stays). Checked like a row of the bank file; raises
    contest.errors.ImportRejected (row 2 is the typed text)."""
    text_lines: list[str] = []
    options: dict[int, list[str]] = {}
    label: int | None = None
    for line in typed.splitlines():
        match = _OPTION_LINE.match(line)
        if match:
            label = "abc".index(match.group(1).lower())
            options[label] = [match.group(2)]
        elif label is not None:
            options[label].append(line)  # an option spans lines
        else:
            text_lines.append(line)
    text = " ".join(" ".join(text_lines).split()) or current.text
    chosen = [" ".join(options[i]) if i in options else current.options[i] for i in range(3)]
    row = {
        "topic": current.topic,
        "question": text,
        "a": chosen[0],
        "b": chosen[1],
        "c": chosen[2],
        "answer": "abc"[current.answer],
    }
    checked = validate_questions(QUESTION_COLUMNS, [row])[0]
    return checked.text, checked.options


class QuestionFixes(UseCase):
    async def find(self, query: str) -> Found:
        """Questions by id (``12`` or ``#12``) or by part of their text (accents, case and
        spacing aside), the bank's withdrawn and voided ones included."""
        wanted = query.strip().lstrip("#").strip()
        if not wanted:
            raise ContestError("fix_usage")
        async with self.uow(write=False) as uow:
            if wanted.isdigit():
                state = await uow.fixes.state(int(wanted))
                return Found([state] if state else [], 1 if state else 0)
            if len(wanted) < MIN_QUERY:
                raise ContestError("fix_query_short", least=MIN_QUERY)
            states = await uow.fixes.states()
        needle = fold(wanted)
        found = [s for s in states if needle in fold(s.question.text)]
        return Found(found[:SEARCH_LIMIT], len(found))

    async def view(self, question_id: int) -> QuestionView:
        async with self.uow(write=False) as uow:
            state = await uow.fixes.state(question_id)
            if state is None:
                raise ContestError("question_unknown", question_id=question_id)
            return QuestionView(state, await uow.fixes.impact(question_id))

    async def prepare(self, actor: Actor, question_id: int, change: Change) -> FixPreview:
        """Check a fix and count what it touches; it waits for a confirmation (a token)."""
        async with self.uow() as uow:
            now = self.clock.now()
            state = await uow.fixes.state(question_id)
            if state is None:
                raise ContestError("question_unknown", question_id=question_id)
            await self._check(uow, state, change)
            impact = await uow.fixes.impact(
                question_id,
                key=change.key if change.kind == FIX_KEY else None,
                void=change.kind == FIX_VOID,
            )
            token = secrets.token_urlsafe(8)
            await uow.pending.purge(PENDING_FIX, now - PENDING_FOR)
            await uow.pending.put(
                PENDING_FIX + token,
                {
                    "question_id": question_id,
                    "kind": change.kind,
                    "text": change.text,
                    "options": list(change.options) if change.options else None,
                    "key": change.key,
                    "before": snapshot(state),
                },
                actor.key,
                now,
            )
            await uow.commit()
        return FixPreview(token, state, change, impact)

    async def prepare_wording(self, actor: Actor, question_id: int, typed: str) -> FixPreview:
        async with self.uow(write=False) as uow:
            state = await uow.fixes.state(question_id)
        if state is None:
            raise ContestError("question_unknown", question_id=question_id)
        text, options = parse_wording(typed, state.question)  # ImportRejected: shown as is
        return await self.prepare(actor, question_id, Change(FIX_WORDING, text, options))

    async def confirm(self, actor: Actor, token: str) -> FixDone:
        """Make the fix shown for review, once: a second press, another organiser's press
        or a press after the question changed changes nothing."""
        async with self.uow() as uow:
            now = self.clock.now()
            pending = await uow.pending.get(PENDING_FIX + token)
            if pending is None:
                raise ContestError("fix_expired")
            value, by, at = pending
            if by != actor.key or now - at > PENDING_FOR:
                raise ContestError("fix_expired")
            if not await uow.pending.take(PENDING_FIX + token):
                raise ContestError("fix_expired")
            question_id = int(value["question_id"])
            options = value.get("options")
            change = Change(
                str(value["kind"]),
                value.get("text"),
                (options[0], options[1], options[2]) if options else None,
                value.get("key"),
            )
            state = await uow.fixes.state(question_id, lock=True)
            if state is None or snapshot(state) != value["before"]:
                raise ContestError("fix_stale", question_id=question_id)
            await self._check(uow, state, change)
            impact = await uow.fixes.impact(
                question_id,
                key=change.key if change.kind == FIX_KEY else None,
                void=change.kind == FIX_VOID,
            )
            before = snapshot(state)
            after = dict(before)
            if change.kind == FIX_WORDING:
                assert change.text is not None and change.options is not None
                after.update(text=change.text, options=list(change.options))
            elif change.kind == FIX_KEY:
                after.update(answer=change.key)
            else:
                after.update(voided=True, active=False)
            fix_id = await uow.fixes.record(
                QuestionFix(
                    id=0,
                    question_id=question_id,
                    kind=change.kind,
                    before=before,
                    after=after,
                    by=actor.key,
                    at=now,
                    attempts_touched=impact.attempts,
                    persons_touched=impact.persons,
                )
            )
            notice = FixNotice(
                kind=FIX_NOTIFICATION,
                key_prefix=f"{FIX_NOTIFICATION}:{fix_id}:",
                payload={"fix_id": fix_id},
                now=now,
                expires_at=now + RESULT_VALID_FOR,
            )
            regraded: Regraded | None = None
            if change.kind == FIX_WORDING:
                assert change.text is not None and change.options is not None
                await uow.fixes.reword(question_id, change.text, change.options, now)
            elif change.kind == FIX_KEY:
                assert change.key is not None
                if not await uow.fixes.set_key(question_id, state.question.answer, change.key, now):
                    raise ContestError("fix_stale", question_id=question_id)
                regraded = await uow.fixes.regrade(question_id, key=change.key, notice=notice)
            else:
                if not await uow.fixes.void(question_id, now):
                    raise ContestError("fix_stale", question_id=question_id)
                regraded = await uow.fixes.regrade(question_id, key=None, notice=notice)
            detail: dict[str, Any] = {
                "fix": fix_id,
                "kind": change.kind,
                "attempts": impact.attempts,
                "persons": impact.persons,
            }
            if regraded is not None:
                detail.update(changed_attempts=regraded.attempts, notified=regraded.notified)
                await self._recount_by_rule(uow)
            if change.key is not None:
                detail.update(key_before="ABC"[state.question.answer], key_after="ABC"[change.key])
            await audit(uow, now, actor, "fix_question", "ok", f"question:{question_id}", detail)
            await uow.commit()
        self.ctx.bank.invalidate()  # other processes read the bank again within a minute
        if regraded is not None:
            # Answers recorded by presses that read the question just before the fix
            # committed (another process, PostgreSQL) are graded again now.
            async with self.uow() as uow:
                late = await uow.fixes.settle(question_id, key=change.key, notice=notice)
                if late.items:
                    await self._recount_by_rule(uow)
                await uow.commit()
            if late.items:
                log.info("fix %s: %d answers given meanwhile re-graded", fix_id, late.items)
                regraded = Regraded(
                    regraded.items + late.items,
                    regraded.attempts + late.attempts,
                    regraded.notified + late.notified,
                )
        return FixDone(fix_id, state, change, impact, regraded)

    async def _recount_by_rule(self, uow: UnitOfWork) -> None:
        """The regrade flagged the counting attempts by time; under the prediction rule, once
        the official figure is known, flag them again by it (as /dapandudoan does), so the
        export agrees with /bxh and qualification."""
        if self.rules.uses_prediction:
            official = await official_figure(uow)
            if official is not None:
                await uow.attempts.recount(1, official)

    async def cancel(self, actor: Actor, token: str) -> bool:
        async with self.uow() as uow:
            pending = await uow.pending.get(PENDING_FIX + token)
            if pending is None or pending[1] != actor.key:
                return False
            taken = await uow.pending.take(PENDING_FIX + token)
            await uow.commit()
            return taken

    async def result_change(self, fix_id: int, person_id: int) -> ResultChange | None:
        """What to tell a person about a fix, as their results stand now; None when there
        is nothing (the fix or their attempts are gone)."""
        async with self.uow(write=False) as uow:
            fix = await uow.fixes.get(fix_id)
            if fix is None:
                return None
            rounds = []
            for number in await uow.fixes.rounds_drawn(fix.question_id, person_id):
                results = await uow.attempts.results_for(person_id, number)
                if results:
                    ordered = sorted(results, key=lambda r: r.number)
                    rounds.append(RoundResults(number, ordered, best_result(results)))
        return ResultChange(fix.kind, rounds) if rounds else None

    async def _check(self, uow: UnitOfWork, state: QuestionState, change: Change) -> None:
        """Whether the fix makes sense for the question as it is now."""
        question = state.question
        if change.kind == FIX_WORDING:
            if change.text is None or change.options is None:
                raise ContestError("fix_usage")
            if (change.text, change.options) == (question.text, question.options):
                raise ContestError("fix_no_change")
            owner = await uow.fixes.text_owner(change.text)
            if owner is not None and owner != question.id:
                raise ContestError("fix_text_taken", other=owner)
            return
        if state.voided:
            raise ContestError("question_voided", question_id=question.id)
        if change.kind == FIX_KEY:
            if change.key is None or not 0 <= change.key < 3:
                raise ContestError("fix_usage")
            if change.key == question.answer:
                raise ContestError("fix_same_key", key="ABC"[question.answer])
            return
        if change.kind != FIX_VOID:
            raise ContestError("fix_usage")
        if state.active:
            needed = max(self.rules.round1.questions, self.rules.round2.round.questions)
            left = await uow.questions.count() - 1
            if left < needed:
                raise ContestError("void_bank_too_small", left=left, needed=needed)


__all__ = [
    "FIX_NOTIFICATION",
    "Change",
    "FixDone",
    "FixPreview",
    "Found",
    "QuestionFixes",
    "QuestionView",
    "ResultChange",
    "RoundResults",
    "parse_wording",
]
