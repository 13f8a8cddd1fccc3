"""Round 1 attempts: /thi, the "Bắt đầu" button, and the A/B/C answer buttons."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from telegram import CallbackQuery, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from contest.errors import ContestError
from contest.model import Account
from contest.services import ExamCard, ExamState
from contest.ui import texts
from contest.ui.console.feedback import result_menu
from handlers import keyboards
from handlers.callbacks import BadCallback, parse_answer
from handlers.common import Context, Deps, answer_query, deps, edit, edit_quick, reply, user_id

log = logging.getLogger(__name__)

# Seconds an A/B/C press's acknowledgement may take before the card is edited regardless.
ACK_TIMEOUT = 1.0


def render_card(d: Deps, card: ExamCard) -> tuple[str, InlineKeyboardMarkup]:
    rules = d.rules.round1 if card.round == 1 else d.rules.round2.round
    text = texts.card(card, rules, d.clock.now())
    return text, keyboards.answers(card.attempt_id, card.position)


async def exam(update: Update, context: Context) -> None:
    """/thi: what the person can do now in round 1."""
    d = deps(context)
    uid = user_id(update)
    status = await d.service.exams.exam_status(uid)
    rules = status.round
    if status.state is ExamState.NOT_REGISTERED:
        await reply(update, texts.NOT_REGISTERED, keyboards.register_only())
    elif status.state is ExamState.IN_PROGRESS:
        assert status.card is not None
        await _resume(update, context, status.card)
    elif status.state is ExamState.AWAITING_PREDICTION:
        assert status.ask is not None
        await reply(update, texts.prediction_ask(status.ask, d.clock.now()))
    elif status.state is ExamState.LOCKED:
        await reply(update, texts.account_locked(status.lock_reason))
    elif status.state is ExamState.NOT_OPEN:
        await reply(update, texts.round_not_open(rules))
    elif status.state is ExamState.CLOSED:
        text = texts.round_closed(rules)
        if status.best is not None:
            text += (
                f"\nKết quả được công nhận: {texts.best_line(status.best)} "
                f"(lần thi {status.best.number})."
            )
        await reply(update, text)
    elif status.state is ExamState.NO_ATTEMPTS_LEFT:
        await reply(update, texts.no_attempts_left(rules, status.best))
    else:
        await reply(
            update,
            texts.exam_intro(rules, status.attempts_used, status.best),
            keyboards.exam_start(),
        )


async def _resume(update: Update, context: Context, card: ExamCard) -> None:
    """Show the open attempt again in a new message; the old card loses its buttons."""
    d = deps(context)
    if card.chat_id is not None and card.message_id is not None:
        with contextlib.suppress(TelegramError):  # already without buttons, or deleted
            await context.bot.edit_message_reply_markup(card.chat_id, card.message_id)
    text, markup = render_card(d, card)
    message = await reply(update, "▶️ Tiếp tục bài thi đang làm dở.\n\n" + text, markup)
    if message is not None:
        await d.service.exams.attach_message(card.attempt_id, message.chat_id, message.message_id)


async def exam_button(update: Update, context: Context) -> None:
    """The welcome message's "Vào thi" button: same as /thi."""
    query = update.callback_query
    assert query is not None
    await answer_query(query)
    await exam(update, context)


async def start_attempt(update: Update, context: Context) -> None:
    """ "Bắt đầu": start an attempt (or show the open one) in the pressed message; round 2's
    button (``x:start2``, shown by /vong2 once the session code is typed) starts round 2."""
    query = update.callback_query
    assert query is not None
    d = deps(context)
    pressed = query.message
    round_number = 2 if query.data == "x:start2" else 1
    try:
        card = await d.service.exams.start_attempt(
            user_id(update),
            round_number,
            shown_in=(pressed.chat.id, pressed.message_id) if pressed is not None else None,
        )
    except ContestError as exc:
        await answer_query(query, texts.error(exc.code, **exc.params), alert=True)
        return
    await answer_query(query)
    text, markup = render_card(d, card)
    message = await edit(query, text, markup)
    if message is not None and (card.chat_id, card.message_id) != (
        message.chat_id,
        message.message_id,
    ):
        await d.service.exams.attach_message(card.attempt_id, message.chat_id, message.message_id)


async def answer(update: Update, context: Context) -> None:
    """A/B/C: the answer is committed before the press is acknowledged."""
    query = update.callback_query
    assert query is not None and query.data is not None
    d = deps(context)
    try:
        press = parse_answer(query.data)
        outcome = await d.service.exams.answer(
            user_id(update), press.attempt_id, press.position, press.choice
        )
    except BadCallback:
        await answer_query(query, texts.error("bad_button"))
        return
    except ContestError as exc:
        alert = exc.code == "time_up"
        await answer_query(query, texts.error(exc.code, **exc.params), alert=alert)
        if exc.code == "stale_question":
            await _redraw(query, d, user_id(update), press.attempt_id)
        return
    # The answer is committed. Its acknowledgement may wait ACK_TIMEOUT at most (a stalled
    # answerCallbackQuery must not hold back the card); then the card is edited. (Sending
    # both at once costs a fifth of the ceiling: twice the requests in flight.)
    if outcome.ask is not None:
        # The answers are in; the attempt ends with the prediction question, typed. The
        # result follows the prediction (or, without one, the deadline, from the outbox).
        await answer_query(query, timeout=ACK_TIMEOUT)
        answered = outcome.summary.result.total if outcome.summary is not None else None
        await edit_quick(query, texts.prediction_ask(outcome.ask, d.clock.now(), answered=answered))
        return
    if outcome.summary is not None:
        await answer_query(
            query,
            texts.TIME_UP if outcome.expired else None,
            alert=outcome.expired,
            timeout=ACK_TIMEOUT,
        )
        await edit_quick(
            query,
            texts.attempt_done(outcome.summary, expired=outcome.expired),
            keyboards.menu_markup(result_menu(outcome.summary.result.attempt_id)),
        )
        # Shown: the outbox, which holds the result in case this reply never came, can rest.
        await d.service.exams.result_shown(outcome.summary.result.attempt_id)
        return
    assert outcome.next_card is not None
    await answer_query(query, timeout=ACK_TIMEOUT)
    text, markup = render_card(d, outcome.next_card)
    await edit_quick(query, text, markup)


async def _redraw(query: CallbackQuery, d: Deps, uid: Account, attempt_id: int) -> None:
    """A press on a card that fell behind (its last edit was lost): show where the attempt
    really is, so the person can go on."""
    try:
        card = await d.service.exams.current_card(uid, attempt_id)
    except ContestError:
        return
    message = query.message
    if message is None or card.message_id not in (None, message.message_id):
        return  # the attempt is shown in another message; this one stays as it is
    text, markup = render_card(d, card)
    await edit_quick(query, text, markup)


async def prediction_input(update: Update, context: Context) -> bool:
    """Typed text while the person's last attempt waits for its prediction: stored and the
    result shown (True), or a hint on a bad number (True: nothing changed); False when no
    attempt waits for one (the text is someone else's to handle)."""
    d = deps(context)
    message = update.message
    if not d.rules.uses_prediction or message is None or message.text is None:
        return False
    try:
        summary = await d.service.exams.predict(user_id(update), message.text)
    except ContestError as exc:
        await reply(update, texts.error(exc.code, **exc.params))
        return True
    if summary is None:
        return False
    attempt_id = summary.result.attempt_id
    if summary.chat_id is not None and summary.message_id is not None:
        # The card that asked keeps the answer, without anything to press.
        with contextlib.suppress(TelegramError):
            await context.bot.edit_message_text(
                texts.prediction_recorded(summary.result.prediction),
                chat_id=summary.chat_id,
                message_id=summary.message_id,
                parse_mode="HTML",
            )
    await reply(
        update,
        texts.attempt_done(summary, expired=False),
        keyboards.menu_markup(result_menu(attempt_id)),
    )
    # Shown: the outbox, which holds the result in case this reply never came, can rest.
    await d.service.exams.result_shown(attempt_id)
    return True


def handlers() -> list[BaseHandler[Any, Any, Any]]:
    return [
        CommandHandler("thi", exam),
        CallbackQueryHandler(exam_button, pattern=r"^i:exam$"),
        CallbackQueryHandler(start_attempt, pattern=r"^x:start2?$"),
        CallbackQueryHandler(answer, pattern=r"^x:a:"),
    ]
