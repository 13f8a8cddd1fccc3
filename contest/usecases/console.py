"""The organisers' console: importing the question bank and the units."""

from __future__ import annotations

from collections.abc import Sequence

from contest.errors import ContestError
from contest.importing import MAX_BANK_QUESTIONS, QuestionRow, UnitRow
from contest.ports import ImportSummary
from contest.usecases.base import UseCase


class Console(UseCase):
    async def import_questions(
        self, rows: Sequence[QuestionRow], *, replace: bool = False
    ) -> ImportSummary:
        """Import the bank; ``replace`` makes the file the whole active bank. A replacing
        import that would leave fewer questions than one attempt draws is refused."""
        needed = max(self.rules.round1.questions, self.rules.round2.round.questions)
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
