"""/start, rules, guide, profile and results."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from contest.errors import ContestError
from contest.ui import texts
from contest.ui.console.feedback import results_menu
from handlers import keyboards
from handlers.common import Context, answer_query, deps, reply, user_id
from handlers.exam import exam
from handlers.registration import start_registration

DEEP_LINKS = {"dangky": start_registration, "thi": exam}


async def start(update: Update, context: Context) -> None:
    """/start [payload]: greet, summarise the rules, offer rules and guide."""
    d = deps(context)
    user = update.effective_user
    assert user is not None
    profile = await d.service.registration.profile(user_id(update))
    payload = context.args[0].lower() if context.args else ""
    await reply(
        update,
        texts.welcome(user.first_name or "bạn", profile is not None, d.rules),
        keyboards.start(profile is not None),
    )
    if payload == "thi" and profile is None:
        # The poster's QR code (``?start=thi``) scanned by a newcomer: register first; the
        # success message then leads into the exam with its «Vào thi» button.
        payload = "dangky"
    action = DEEP_LINKS.get(payload)
    if action is not None:
        await action(update, context)


async def rules(update: Update, context: Context) -> None:
    """/thele."""
    await reply(update, texts.rules_text(deps(context).rules))


async def guide(update: Update, context: Context) -> None:
    """/huongdan."""
    await reply(update, texts.guide_text(deps(context).rules))


async def info_button(update: Update, context: Context) -> None:
    """The "Thể lệ" and "Hướng dẫn" buttons."""
    query = update.callback_query
    assert query is not None
    await answer_query(query)
    if query.data == "i:rules":
        await rules(update, context)
    else:
        await guide(update, context)


async def profile(update: Update, context: Context) -> None:
    """/hoso: the person's registration."""
    found = await deps(context).service.registration.profile(user_id(update))
    if found is None:
        await reply(update, texts.NOT_REGISTERED, keyboards.register_only())
        return
    await reply(update, texts.profile_text(found))


async def results(update: Update, context: Context) -> None:
    """/ketqua: each attempt and the one that counts."""
    d = deps(context)
    try:
        view = await d.service.results.person_results(user_id(update))
    except ContestError as exc:
        await reply(update, texts.error(exc.code, **exc.params), keyboards.register_only())
        return
    menu = results_menu(view)  # «Góp ý về bài thi» under the finished attempts
    markup = keyboards.menu_markup(menu) if menu else None
    await reply(update, texts.results_text(view, d.rules.round1), markup)


async def stale_button(update: Update, context: Context) -> None:
    """A button this version of the bot does not know (an old message, or forged data)."""
    query = update.callback_query
    assert query is not None
    await answer_query(query, texts.error("bad_button"))


async def other_message(update: Update, context: Context) -> None:
    """Stickers, photos, unknown commands: say what the bot understands."""
    message = update.message
    if message is not None and message.text and message.text.startswith("/"):
        await reply(update, texts.UNKNOWN_COMMAND)
    else:
        await reply(update, texts.ONLY_TEXT)


def fallbacks() -> list[BaseHandler[Any, Any, Any]]:
    """Registered last: anything no other handler took."""
    return [
        MessageHandler(filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE, other_message),
        CallbackQueryHandler(stale_button),
    ]


def handlers() -> list[BaseHandler[Any, Any, Any]]:
    return [
        CommandHandler("start", start),
        CommandHandler(["thele"], rules),
        CommandHandler(["huongdan", "help"], guide),
        CommandHandler("hoso", profile),
        CommandHandler("ketqua", results),
        CallbackQueryHandler(info_button, pattern=r"^i:(rules|guide)$"),
    ]
