"""Registration: consent, name, birth date, verified phone, group, unit or ward, summary."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from contest.errors import ContestError
from contest.model import Account, Group, Position, UnitKind, age_on
from contest.registration import Step
from contest.services import ExamState, RegistrationView
from contest.ui import texts
from handlers import keyboards
from handlers.callbacks import BadCallback, parse_int, parse_reg
from handlers.common import Context, answer_query, deps, edit, reply, user_id
from handlers.console import typed_input
from handlers.exam import prediction_input

# New messages in a private chat: an edited message or a channel post is not an answer.
PRIVATE_MESSAGE = filters.UpdateType.MESSAGE & filters.ChatType.PRIVATE


def prompt(view: RegistrationView) -> tuple[str, object]:
    """The question (and its keyboard) for the step the draft is at."""
    draft = view.draft
    step = draft.step
    if step is Step.CONSENT:
        return texts.CONSENT, keyboards.consent()
    if step is Step.NAME:
        return texts.ASK_NAME, None
    if step is Step.BIRTH_DATE:
        return texts.ASK_BIRTH_DATE, None
    if step is Step.PHONE:
        return texts.ASK_PHONE, keyboards.share_phone()
    if step is Step.GROUP:
        return texts.ask_group(draft), keyboards.group()
    if step is Step.UNIT_KIND:
        return texts.ASK_UNIT_KIND, keyboards.unit_kind()
    if step in (Step.UNIT, Step.WARD):
        page = view.page
        assert page is not None
        ward = step is Step.WARD
        text = texts.ask_unit(page, ward=ward)
        return text, keyboards.units(page, ward=ward)
    if step is Step.POSITION:
        return texts.ASK_POSITION, keyboards.position()
    names = view.units or {}
    return texts.summary(draft, names.get("unit"), names.get("ward")), keyboards.summary(draft)


async def send_prompt(update: Update, view: RegistrationView) -> None:
    text, markup = prompt(view)
    await reply(update, text, markup)


async def start_registration(update: Update, context: Context) -> None:
    """/dangky: begin or resume registration."""
    try:
        view = await deps(context).service.registration.begin_registration(user_id(update))
    except ContestError as exc:
        await reply(update, texts.error(exc.code, **exc.params))
        return
    await send_prompt(update, view)


async def on_text(update: Update, context: Context) -> None:
    """Typed text: what a console reply asked for, a prediction an attempt waits for, a
    registration answer or unit search; otherwise a gentle hint."""
    assert update.message is not None and update.message.text is not None
    if await typed_input(update, context):
        return
    if await prediction_input(update, context):
        return
    d = deps(context)
    uid = user_id(update)
    try:
        view = await d.service.registration.registration_text(uid, update.message.text)
    except ContestError as exc:
        if exc.code == "no_registration":
            await reply(update, await _outside_registration_hint(uid, context))
            return
        await reply(update, texts.error(exc.code, **exc.params))
        current = await d.service.registration.draft_view(uid)
        # Where a button is expected (a refused birth-date correction too), ask again.
        if current is not None and current.draft.step not in (Step.NAME, Step.BIRTH_DATE):
            await send_prompt(update, current)
        return
    if view.corrected == "birth_date" and view.draft.birth_date is not None:
        await reply(update, texts.birth_date_corrected(view.draft.birth_date))
    await send_prompt(update, view)


async def _outside_registration_hint(uid: Account, context: Context) -> str:
    status = await deps(context).service.exams.exam_status(uid)
    if status.state is ExamState.IN_PROGRESS:
        return texts.USE_ANSWER_BUTTONS
    if status.state is ExamState.NOT_REGISTERED:
        return texts.NOT_REGISTERED
    return texts.UNKNOWN_TEXT


async def on_contact(update: Update, context: Context) -> None:
    """A shared contact: accepted only when it is the sender's own."""
    message = update.message
    assert message is not None and message.contact is not None
    contact = message.contact
    service = deps(context).service
    try:
        view = await service.registration.register_input(
            user_id(update), Step.PHONE, (contact.phone_number, contact.user_id)
        )
    except ContestError as exc:
        await reply(update, texts.error(exc.code, **exc.params))
        if exc.code == "no_registration":
            return
        current = await service.registration.draft_view(user_id(update))
        if current is not None and current.draft.step is Step.PHONE:
            await send_prompt(update, current)
        return
    await reply(update, "✅ Đã xác thực số điện thoại.", keyboards.remove())
    await send_prompt(update, view)


async def on_button(update: Update, context: Context) -> None:
    """Every ``r:`` button of the registration conversation."""
    query = update.callback_query
    assert query is not None and query.data is not None
    service = deps(context).service
    uid = user_id(update)
    try:
        action, argument = parse_reg(query.data)
        if action == "page":
            page_text, _, search = argument.partition("|")
            view = await service.registration.unit_page(uid, parse_int(page_text), search or None)
            await answer_query(query)
            text, markup = prompt(view)
            await edit(query, text, markup)  # type: ignore[arg-type]
            return
        if action == "confirm":
            person = await service.registration.confirm_registration(uid)
            await answer_query(query)
            await edit(
                query,
                texts.registered(person.full_name, deps(context).rules.round1),
                keyboards.registered(),
            )
            return
        view = await _apply_button(uid, action, argument, context)
    except BadCallback:
        await answer_query(query, texts.error("bad_button"))
        return
    except ContestError as exc:
        alert = exc.code not in ("wrong_step",)
        await answer_query(query, texts.error(exc.code, **exc.params), alert=alert)
        if exc.code == "citizen_under_age":
            await _refuse_under_age(update, context)
        return
    await answer_query(query)
    # Keep the answered question visible, without its buttons, then ask the next one.
    message = query.message
    if message is not None and hasattr(message, "text_html") and action != "edit":
        chosen = _pressed_label(message, query.data) or _chosen_label(action, argument)
        await edit(query, message.text_html + f"\n\n➡️ {texts.h(chosen)}")
    await send_prompt(update, view)


async def _refuse_under_age(update: Update, context: Context) -> None:
    """The under-age refusal, said in the chat too (a popup alone is easily missed, and
    gone at once): the birth date that was typed, and the fixes."""
    d = deps(context)
    current = await d.service.registration.draft_view(user_id(update))
    if current is None or current.draft.birth_date is None:
        return
    born = current.draft.birth_date
    age = age_on(born, d.service.ctx.today())
    await reply(update, texts.under_age(born, age, d.rules.min_age), keyboards.under_age())


async def _apply_button(
    uid: Account, action: str, argument: str, context: Context
) -> RegistrationView:
    registration = deps(context).service.registration
    try:
        if action == "consent":
            return await registration.register_input(uid, Step.CONSENT, True)
        if action == "group":
            return await registration.register_input(uid, Step.GROUP, Group(argument))
        if action == "kind":
            return await registration.register_input(uid, Step.UNIT_KIND, UnitKind(argument))
        if action == "unit":
            return await registration.register_input(uid, Step.UNIT, parse_int(argument))
        if action == "ward":
            return await registration.register_input(uid, Step.WARD, parse_int(argument))
        if action == "pos":
            return await registration.register_input(uid, Step.POSITION, Position(argument))
        if action == "back":
            return await registration.unit_kind_again(uid)
        if action == "edit":
            return await registration.edit_field(uid, argument)
    except ValueError as exc:
        if isinstance(exc, BadCallback):
            raise
        raise BadCallback(argument) from None
    raise BadCallback(action)


def _pressed_label(message: object, data: str) -> str | None:
    """The text of the button that was pressed (e.g. the unit's name)."""
    markup = getattr(message, "reply_markup", None)
    for row in getattr(markup, "inline_keyboard", ()):
        for button in row:
            if button.callback_data == data:
                return str(button.text)
    return None


def _chosen_label(action: str, argument: str) -> str:
    if action == "consent":
        return texts.BTN_CONSENT
    if action == "group":
        return texts.GROUP_NAMES[Group(argument)]
    if action == "kind":
        return texts.KIND_NAMES[UnitKind(argument)]
    if action == "pos":
        return texts.POSITION_NAMES[Position(argument)]
    if action == "back":
        return "Chọn khối khác"
    return "Đã chọn"


async def register_button(update: Update, context: Context) -> None:
    """The "Đăng ký dự thi" button of the welcome message."""
    query = update.callback_query
    assert query is not None
    await answer_query(query)
    await start_registration(update, context)


def handlers() -> list[BaseHandler[Any, Any, Any]]:
    return [
        CommandHandler("dangky", start_registration),
        CallbackQueryHandler(register_button, pattern=r"^i:reg$"),
        CallbackQueryHandler(on_button, pattern=r"^r:"),
        MessageHandler(PRIVATE_MESSAGE & filters.CONTACT, on_contact),
        MessageHandler(PRIVATE_MESSAGE & filters.TEXT & ~filters.COMMAND, on_text),
    ]
