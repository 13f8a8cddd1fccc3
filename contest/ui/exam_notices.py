"""The notices of attempts: a result (of an attempt closed by its deadline, or whose reply
never reached the person) and the deadline warnings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contest.model import AttemptStatus
from contest.ports import Notification
from contest.ui import texts
from contest.ui.console.feedback import result_menu
from contest.ui.notices import CardRef, Notice, notice
from contest.usecases.outbox import RESULT_NOTIFICATION, WARNING_NOTIFICATION

if TYPE_CHECKING:
    from contest.services import ContestService


@notice(RESULT_NOTIFICATION)
async def attempt_result(service: ContestService, note: Notification) -> Notice | None:
    summary = await service.exams.attempt_summary(int(note.payload["attempt_id"]))
    if summary is None:
        return None
    retire = None
    if summary.chat_id is not None and summary.message_id is not None:
        retire = CardRef(summary.chat_id, summary.message_id, texts.card_closed())
    expired = summary.result.status is AttemptStatus.EXPIRED
    menu = result_menu(summary.result.attempt_id)  # «Góp ý về bài thi»
    return Notice(texts.attempt_done(summary, expired=expired), menu, retire=retire)


@notice(WARNING_NOTIFICATION)
async def attempt_warning(service: ContestService, note: Notification) -> Notice | None:
    warning = await service.exams.warning_for(int(note.payload["attempt_id"]))
    if warning is None:  # the attempt ended first: nothing to say
        return None
    return Notice(texts.warning(warning.seconds_left))
