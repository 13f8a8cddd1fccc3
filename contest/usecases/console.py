"""The organisers' console: importing the question bank and the units, from the command
line or as a file sent in the chat.

A file sent in the chat is read and checked exactly as the command line does it (the
``UploadReader`` is ``storage.files.read_table`` with the chat's size cap, then
``contest.importing``), off the event loop. Nothing is written until an organiser confirms
what the file will do; meanwhile the checked rows wait in the pending requests. For the
bank, a question some attempt already drew keeps its key and options: a file that changes
them is not applied to that question (it is fixed with /suacau, which re-grades), so no
attempt in progress and no score already earned changes.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from contest.errors import ContestError, ImportProblem, ImportRejected
from contest.importing import (
    MAX_BANK_QUESTIONS,
    QUESTION_COLUMNS,
    UNIT_COLUMNS,
    QuestionRow,
    UnitRow,
    validate_questions,
    validate_units,
)
from contest.model import UnitKind
from contest.ports import ImportSummary, UnitOfWork, UploadReader
from contest.text import question_key
from contest.usecases.base import Context, UseCase
from contest.usecases.staff import Actor, audit

QUESTIONS = "questions"
UNITS = "units"
UPSERT = "upsert"  # add new questions, update those already there
REPLACE = "replace"  # the file becomes the whole active bank
PENDING_UPLOAD = "upload:"
PENDING_FOR = timedelta(hours=1)


@dataclass(frozen=True)
class Listed:
    """A question of the bank named in a reply (id and text)."""

    question_id: int
    text: str


@dataclass(frozen=True)
class BankPlan:
    """What a checked bank file would do, counted against the bank as it is now."""

    rows: int
    created: int
    updated: int
    unchanged: int
    # Already drawn by some attempt, with another key or other options in the file: left
    # as they are (fixed with /suacau).
    kept: list[Listed]
    voided: list[Listed]  # voided questions stay voided
    withdrawn: int  # active questions missing from the file: withdrawn by a replace
    active_after_upsert: int
    active_after_replace: int


@dataclass(frozen=True)
class UnitPlan:
    rows: int
    created: int
    updated: int


@dataclass(frozen=True)
class UploadCheck:
    """A file sent in the chat, checked: refused (``problems``), or waiting for the
    organiser's choice (``token``): the kind of file when its header does not tell
    (``what`` None), else how to apply it."""

    filename: str
    what: str | None = None
    token: str | None = None
    problems: list[ImportProblem] = field(default_factory=list)
    bank: BankPlan | None = None
    units: UnitPlan | None = None


@dataclass(frozen=True)
class UploadDone:
    what: str
    mode: str
    summary: ImportSummary
    bank: BankPlan | None = None
    units: UnitPlan | None = None


def _kind_of(header: Sequence[str]) -> str | None:
    present = {h.strip().lower() for h in header}
    if set(QUESTION_COLUMNS) <= present:
        return QUESTIONS
    if set(UNIT_COLUMNS) <= present:
        return UNITS
    return None


def _encode(rows: Sequence[QuestionRow | UnitRow]) -> list[list[Any]]:
    encoded: list[list[Any]] = []
    for row in rows:
        if isinstance(row, QuestionRow):
            encoded.append([row.topic, row.text, list(row.options), row.answer])
        else:
            encoded.append([row.code, row.name, row.kind.value, row.staff_count])
    return encoded


def _questions(encoded: list[list[Any]]) -> list[QuestionRow]:
    return [QuestionRow(t, x, (o[0], o[1], o[2]), int(a)) for t, x, o, a in encoded]


def _units(encoded: list[list[Any]]) -> list[UnitRow]:
    return [UnitRow(c, n, UnitKind(k), int(s)) for c, n, k, s in encoded]


class Console(UseCase):
    def __init__(self, ctx: Context, reader: UploadReader | None = None) -> None:
        super().__init__(ctx)
        self.reader = reader  # files sent in the chat (None: the chat takes no files)

    async def import_questions(
        self, rows: Sequence[QuestionRow], *, replace: bool = False
    ) -> ImportSummary:
        """Import the bank; ``replace`` makes the file the whole active bank. A replacing
        import that would leave fewer questions than one attempt draws is refused."""
        needed = self._needed()
        if replace and len(rows) < needed:
            raise ContestError("bank_would_be_too_small", needed=needed, available=len(rows))
        if len(rows) > MAX_BANK_QUESTIONS:
            raise ContestError("bank_too_large", limit=MAX_BANK_QUESTIONS, total=len(rows))
        async with self.uow() as uow:
            summary = await uow.questions.upsert(rows, replace=replace)
            # The bot caches the whole active bank: past the cap, nothing is committed.
            total = await uow.questions.count()
            if total > MAX_BANK_QUESTIONS:
                raise ContestError("bank_too_large", limit=MAX_BANK_QUESTIONS, total=total)
            await uow.commit()
        self.ctx.bank.invalidate()
        return summary

    async def import_units(self, rows: Sequence[UnitRow]) -> ImportSummary:
        async with self.uow() as uow:
            summary = await uow.units.upsert(rows)
            await uow.commit()
            return summary

    # ------------------------------------------------------------ files sent in the chat

    async def receive_upload(self, actor: Actor, filename: str, data: bytes) -> UploadCheck:
        """Read and check a file; a bank or units file by its header. Refused: every
        problem (nothing is kept). Else it waits, under a token, for the organiser's
        choice: the kind of file (header not recognised) or how to apply it."""
        try:
            what, rows = await asyncio.to_thread(self._read, filename, data, None)
        except ImportRejected as exc:
            await self._record(actor, "upload", "failed", filename, errors=len(exc.problems))
            return UploadCheck(filename, problems=exc.problems)
        if what is None:
            raw = {"file": filename, "raw": base64.b64encode(data).decode("ascii")}
            token = await self._stash(actor, raw, "upload", filename)
            return UploadCheck(filename, token=token)
        assert rows is not None
        return await self._checked(actor, filename, what, rows)

    async def choose_kind(self, actor: Actor, token: str, what: str) -> UploadCheck:
        """The organiser says what a file whose header was not recognised is."""
        if what not in (QUESTIONS, UNITS):
            raise ContestError("upload_expired")
        value = await self._pending(actor, token, take=True)
        filename = str(value.get("file", ""))
        if "raw" not in value:
            raise ContestError("upload_expired")
        data = base64.b64decode(value["raw"])
        try:
            _, rows = await asyncio.to_thread(self._read, filename, data, what)
        except ImportRejected as exc:
            await self._record(actor, "upload", "failed", filename, errors=len(exc.problems))
            return UploadCheck(filename, what=what, problems=exc.problems)
        assert rows is not None
        return await self._checked(actor, filename, what, rows)

    async def upload_plan(self, actor: Actor, token: str) -> UploadCheck:
        """A checked file waiting for confirmation, counted against the database now."""
        value = await self._pending(actor, token)
        what, filename = value.get("what"), str(value.get("file", ""))
        async with self.uow(write=False) as uow:
            if what == QUESTIONS:
                bank = (await self._bank_plan(uow, _questions(value["rows"])))[0]
                return UploadCheck(filename, what, token, bank=bank)
            if what == UNITS:
                units = await self._unit_plan(uow, _units(value["rows"]))
                return UploadCheck(filename, what, token, units=units)
        raise ContestError("upload_expired")

    async def confirm_upload(self, actor: Actor, token: str, mode: str) -> UploadDone:
        """Apply a checked file, once (a second press finds nothing to apply). A question
        already drawn keeps its key and options; a voided one stays voided."""
        if mode not in (UPSERT, REPLACE):
            raise ContestError("upload_expired")
        async with self.uow() as uow:
            now = self.clock.now()
            value = await self._pending_in(uow, actor, token)
            if not await uow.pending.take(PENDING_UPLOAD + token):
                raise ContestError("upload_expired")
            what, filename = value.get("what"), str(value.get("file", ""))
            if what == QUESTIONS:
                bank, rows = await self._bank_plan(uow, _questions(value["rows"]))
                replace = mode == REPLACE
                needed = self._needed()
                if replace and bank.active_after_replace < needed:
                    raise ContestError(
                        "bank_would_be_too_small",
                        needed=needed,
                        available=bank.active_after_replace,
                    )
                summary = await uow.questions.upsert(rows, replace=replace)
                total = await uow.questions.count()
                if total > MAX_BANK_QUESTIONS:
                    raise ContestError(
                        "upload_bank_too_large", limit=MAX_BANK_QUESTIONS, total=total
                    )
                detail: dict[str, Any] = {
                    "file": filename,
                    "mode": mode,
                    "created": summary.created,
                    "updated": summary.updated,
                    "withdrawn": summary.withdrawn,
                    "kept": [k.question_id for k in bank.kept],
                }
                await audit(uow, now, actor, "import_questions", "ok", filename[:255], detail)
                await uow.commit()
                self.ctx.bank.invalidate()
                return UploadDone(QUESTIONS, mode, summary, bank=bank)
            if what == UNITS:
                units = await self._unit_plan(uow, _units(value["rows"]))
                summary = await uow.units.upsert(_units(value["rows"]))
                detail = {"file": filename, "created": summary.created, "updated": summary.updated}
                await audit(uow, now, actor, "import_units", "ok", filename[:255], detail)
                await uow.commit()
                return UploadDone(UNITS, UPSERT, summary, units=units)
        raise ContestError("upload_expired")

    async def cancel_upload(self, actor: Actor, token: str) -> bool:
        async with self.uow() as uow:
            try:
                await self._pending_in(uow, actor, token)
            except ContestError:
                return False
            taken = await uow.pending.take(PENDING_UPLOAD + token)
            await uow.commit()
            return taken

    # ------------------------------------------------------------ helpers

    def _needed(self) -> int:
        return max(self.rules.round1.questions, self.rules.round2.round.questions)

    def _read(
        self, filename: str, data: bytes, what: str | None
    ) -> tuple[str | None, list[QuestionRow] | list[UnitRow] | None]:
        """Read and check a file (in a worker thread): its kind, from the header unless
        ``what`` says, and its rows; (None, None) when the header says nothing."""
        if self.reader is None:
            raise ContestError("no_uploads")
        header, rows = self.reader(filename, data)
        kind = what or _kind_of(header)
        if kind == QUESTIONS:
            return kind, validate_questions(header, rows)
        if kind == UNITS:
            return kind, validate_units(header, rows)
        close = getattr(rows, "close", None)
        if close is not None:
            close()
        return None, None

    async def _checked(
        self,
        actor: Actor,
        filename: str,
        what: str,
        rows: Sequence[QuestionRow] | Sequence[UnitRow],
    ) -> UploadCheck:
        value = {"file": filename, "what": what, "rows": _encode(rows)}
        token = await self._stash(actor, value, "upload", filename, what=what, rows=len(rows))
        return await self.upload_plan(actor, token)

    async def _stash(
        self, actor: Actor, value: dict[str, Any], action: str, filename: str, **detail: Any
    ) -> str:
        token = secrets.token_urlsafe(8)
        async with self.uow() as uow:
            now = self.clock.now()
            await uow.pending.purge(PENDING_UPLOAD, now - PENDING_FOR)
            await uow.pending.put(PENDING_UPLOAD + token, value, actor.key, now)
            await audit(uow, now, actor, action, "ok", filename[:255], {"file": filename, **detail})
            await uow.commit()
        return token

    async def _record(
        self, actor: Actor, action: str, outcome: str, filename: str, **detail: Any
    ) -> None:
        async with self.uow() as uow:
            now = self.clock.now()
            await audit(
                uow, now, actor, action, outcome, filename[:255], {"file": filename, **detail}
            )
            await uow.commit()

    async def _pending(self, actor: Actor, token: str, *, take: bool = False) -> dict[str, Any]:
        async with self.uow(write=take) as uow:
            value = await self._pending_in(uow, actor, token)
            if take:
                if not await uow.pending.take(PENDING_UPLOAD + token):
                    raise ContestError("upload_expired")
                await uow.commit()
            return value

    async def _pending_in(self, uow: UnitOfWork, actor: Actor, token: str) -> dict[str, Any]:
        found = await uow.pending.get(PENDING_UPLOAD + token)
        if found is None:
            raise ContestError("upload_expired")
        value, by, at = found
        if by != actor.key or self.clock.now() - at > PENDING_FOR:
            raise ContestError("upload_expired")
        return value

    async def _bank_plan(
        self, uow: UnitOfWork, rows: Sequence[QuestionRow]
    ) -> tuple[BankPlan, list[QuestionRow]]:
        """What the rows would do to the bank now, and the rows to write: a question
        already drawn whose key or options the file changes is written as it is in the
        bank (so a replace keeps it), a voided one not at all."""
        states = {question_key(s.question.text): s for s in await uow.fixes.states()}
        changing = []
        for row in rows:
            state = states.get(question_key(row.text))
            if state is not None and (state.question.options, state.question.answer) != (
                row.options,
                row.answer,
            ):
                changing.append(state.question.id)
        drawn = await uow.questions.drawn(changing) if changing else set()
        created = updated = unchanged = 0
        kept: list[Listed] = []
        voided: list[Listed] = []
        written: list[QuestionRow] = []
        in_file: set[int] = set()
        revived = 0  # withdrawn questions the file brings back
        for row in rows:
            state = states.get(question_key(row.text))
            if state is None:
                created += 1
                written.append(row)
                continue
            question = state.question
            in_file.add(question.id)
            if state.voided:
                voided.append(Listed(question.id, question.text))
                continue
            if not state.active:
                revived += 1
            if question.id in drawn:
                kept.append(Listed(question.id, question.text))
                written.append(
                    QuestionRow(question.topic, question.text, question.options, question.answer)
                )
                continue
            same = (question.topic, question.text, question.options, question.answer) == (
                row.topic,
                row.text,
                row.options,
                row.answer,
            )
            if same and state.active:
                unchanged += 1
            else:
                updated += 1
            written.append(row)
        active = [s for s in states.values() if s.active]
        withdrawn = sum(1 for s in active if s.question.id not in in_file)
        plan = BankPlan(
            rows=len(rows),
            created=created,
            updated=updated,
            unchanged=unchanged,
            kept=kept,
            voided=voided,
            withdrawn=withdrawn,
            active_after_upsert=len(active) + created + revived,
            active_after_replace=len(written),
        )
        return plan, written

    async def _unit_plan(self, uow: UnitOfWork, rows: Sequence[UnitRow]) -> UnitPlan:
        created = 0
        for row in rows:
            if await uow.units.by_code(row.code) is None:
                created += 1
        return UnitPlan(len(rows), created, len(rows) - created)
