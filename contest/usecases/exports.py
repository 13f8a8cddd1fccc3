"""The organisers' workbook (``/xuat``): made by an ``Exporter`` away from the bot's event
loop, one at a time, and audited.

A workbook of a city's contest (100,000 contestants) takes the best part of one core for
seconds. Two organisers asking at once would take both cores of a small server from the
contestants, so requests queue here: the second one starts when the first is done (the
console tells its organiser so at once).
"""

from __future__ import annotations

import asyncio
import logging

from contest.errors import ContestError
from contest.ports import ExportedWorkbook, Exporter, ExportRequest
from contest.usecases.base import Context, UseCase
from contest.usecases.predictions import tie_rule_in
from contest.usecases.staff import Actor, audit

log = logging.getLogger(__name__)

EXPORT_ACTION = "xuat"  # the audit log's name for it, as the console's command


class Exports(UseCase):
    def __init__(self, ctx: Context, exporter: Exporter | None = None) -> None:
        super().__init__(ctx)
        # Set by the assembly (bot.app): the storage's exporter, which runs a worker process.
        self.exporter = exporter
        self._turn = asyncio.Lock()

    @property
    def busy(self) -> bool:
        """A workbook is being made: a new request waits for its turn."""
        return self._turn.locked()

    async def workbook(self, actor: Actor, round_number: int = 1) -> ExportedWorkbook:
        """The workbook of ``round_number`` as of now, made when no other is being made.
        Audited: who, and what it held; a failure too (then ``export_failed``)."""
        exporter = self.exporter
        if exporter is None:
            raise ContestError("export_unavailable")
        async with self._turn:
            async with self.uow(write=False) as uow:
                rule = await tie_rule_in(uow, self.rules, round_number)
            request = ExportRequest(
                round_number,
                self.rules.quota,
                self.clock.now(),
                tie_break=tuple(b.value for b in rule.breaks),
                official=rule.official,
            )
            try:
                made = await exporter.workbook(request)
            except ContestError as exc:
                await self._record(actor, "failed", {"error": exc.code})
                raise
            except Exception as exc:  # the worker's own failure: logged there and here
                log.error("export failed: %s", type(exc).__name__)
                await self._record(actor, "failed", {"error": "export_failed"})
                raise ContestError("export_failed") from exc
            await self._record(
                actor,
                "ok",
                {
                    "round": round_number,
                    "contestants": made.contestants,
                    "ranked": made.ranked,
                    "attempts": made.attempts,
                    "questions": made.questions,
                    "bytes": len(made.data),
                    "seconds": round(made.seconds, 2),
                },
            )
        return made

    async def _record(self, actor: Actor, outcome: str, detail: dict[str, object]) -> None:
        async with self.uow() as uow:
            await audit(uow, self.clock.now(), actor, EXPORT_ACTION, outcome, None, detail)
            await uow.commit()
