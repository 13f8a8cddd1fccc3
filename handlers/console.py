"""The organisers' console on Telegram: commands, pressed console choices (``a:…``), files
sent as documents, and typed input a console reply asked for, all handed to the
channel-neutral router (``contest.ui.router``) and its replies rendered here.

Console commands appear in Telegram's command menu only in the chats of organisers and
focal persons (``setMyCommands`` with a chat scope); contestants never see them. A
contestant who types one anyway, or presses a forged console button, is refused, and the
attempt is audited.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from telegram import BotCommand, BotCommandScopeChat, InputFile, Message, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

import contest.ui.console  # noqa: F401  (registers every console route)
from contest.model import Channel, Role
from contest.ui import texts
from contest.ui.reply import Reply
from contest.ui.router import CONSOLE, Ui, Upload
from handlers.common import DEPS_KEY, Context, Deps, answer_query, edit, reply, user_id
from handlers.keyboards import menu_markup

log = logging.getLogger(__name__)

UI_KEY = "contest_ui"
MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # the chat's limit for an uploaded file
PRIVATE = filters.ChatType.PRIVATE
# The contestant's command menu (every chat); organisers' chats get the console on top.
CONTESTANT_COMMANDS = [
    BotCommand("start", "Giới thiệu cuộc thi"),
    BotCommand("dangky", "Đăng ký dự thi"),
    BotCommand("thi", "Vào thi"),
    BotCommand("ketqua", "Xem kết quả thi"),
    BotCommand("hoso", "Xem hồ sơ dự thi"),
    BotCommand("gopy", "Góp ý, hỏi Ban Tổ chức"),
    BotCommand("thele", "Thể lệ cuộc thi"),
    BotCommand("huongdan", "Hướng dẫn dự thi"),
    BotCommand("nhacnho", "Bật/tắt nhắc nhở"),
    BotCommand("lienket", "Liên kết với tài khoản Zalo"),
]


def ui(context: Context) -> Ui:
    value = context.bot_data[UI_KEY]
    assert isinstance(value, Ui)
    return value


def _name(update: Update) -> str | None:
    user = update.effective_user
    return user.full_name if user is not None else None


async def render(update: Update, context: Context, answer: Reply) -> None:
    """Show a console reply: on a press, in place of the pressed message (or as a new one);
    otherwise as a new message; a document goes as a file."""
    if answer.roles_changed:  # before the reply: whoever reads it finds the menus right
        await refresh_menus(context.application)
    query = update.callback_query
    markup = menu_markup(answer.menu) if answer.menu else None
    if query is not None:
        await answer_query(query, answer.alert if answer.alert else None)
        if answer.text:
            if answer.new_message or not isinstance(query.message, Message):
                await reply(update, answer.text, markup)
            else:
                await edit(query, answer.text, markup)
    elif answer.text:
        await reply(update, answer.text, markup)
    if answer.document is not None and update.effective_chat is not None:
        await update.effective_chat.send_document(
            InputFile(answer.document.data, filename=answer.document.filename),
            caption=answer.document.caption or None,
            parse_mode="HTML",
        )
    if answer.later is not None:  # the slow part (an export): its reply follows, as new
        await render(update, context, replace(await answer.later(), new_message=True))


async def on_command(update: Update, context: Context) -> None:
    """A console command, from anyone: the router checks the role (and audits)."""
    message = update.message
    assert message is not None and message.text is not None
    name = message.text.split()[0].lstrip("/").split("@")[0].lower()
    console = ui(context)
    actor = await console.actor(user_id(update), _name(update))
    answer = await console.command(actor, name, tuple(context.args or ()))
    await render(update, context, answer)


async def on_action(update: Update, context: Context) -> None:
    """A pressed console choice (``a:…``); forged or stale data changes nothing."""
    query = update.callback_query
    assert query is not None and query.data is not None
    console = ui(context)
    actor = await console.actor(user_id(update), _name(update))
    answer = await console.action(actor, query.data)
    if answer is None:
        await answer_query(query, texts.error("bad_button"))
        return
    await render(update, context, answer)


async def on_document(update: Update, context: Context) -> None:
    """A file sent to the bot: an organiser's import (the router checks the role)."""
    message = update.message
    assert message is not None and message.document is not None
    document = message.document
    console = ui(context)
    actor = await console.actor(user_id(update), _name(update))
    name = document.file_name or "tep"
    if actor.role is Role.CONTESTANT:  # a photo or a file from a contestant: no import
        target = f"upload:{name[:60]}"  # audited as the router audits a refused route
        await console.service.staff.record(actor, "upload", "refused", target=target)
        await reply(update, texts.ONLY_TEXT)
        return
    size = document.file_size or 0
    if size > MAX_UPLOAD_BYTES:
        await reply(update, texts.upload_too_big(size, MAX_UPLOAD_BYTES))
        return
    try:
        file = await document.get_file()
        content = bytes(await file.download_as_bytearray())
    except TelegramError as exc:
        log.warning("could not download an upload: %s", type(exc).__name__)
        await reply(update, texts.UPLOAD_FAILED)
        return
    if len(content) > MAX_UPLOAD_BYTES:
        await reply(update, texts.upload_too_big(len(content), MAX_UPLOAD_BYTES))
        return
    await render(update, context, await console.upload(actor, Upload(name, content)))


async def typed_input(update: Update, context: Context) -> bool:
    """Typed text that a console reply asked for: handled here (True), or not (False: the
    text is the registration's or a hint)."""
    message = update.message
    assert message is not None and message.text is not None
    answer = await ui(context).text(user_id(update), _name(update), message.text)
    if answer is None:
        return False
    await render(update, context, answer)
    return True


async def refresh_menus(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Give every organiser's and focal person's chat the console commands of their role
    (organisers of the settings included); every other chat keeps the contestants' menu."""
    console = application.bot_data[UI_KEY]
    settings_deps = application.bot_data[DEPS_KEY]
    assert isinstance(console, Ui) and isinstance(settings_deps, Deps)
    roles: dict[str, Role] = {str(user): Role.ORGANISER for user in settings_deps.admin_ids}
    for held in await console.service.staff.holders(revoked=True):
        if held.account.channel is Channel.TELEGRAM:
            role = held.role if held.revoked_at is None else Role.CONTESTANT
            roles.setdefault(held.account.user_id, role)
    for chat_id, role in roles.items():
        commands = CONTESTANT_COMMANDS + [
            BotCommand(name, help_text[:256]) for name, help_text in console.console.menu(role)
        ]
        try:
            await application.bot.set_my_commands(commands, scope=BotCommandScopeChat(int(chat_id)))
        except TelegramError as exc:  # a chat that never wrote to the bot, say
            log.info("could not set the console menu of a chat: %s", type(exc).__name__)


def handlers() -> list[BaseHandler[Any, Any, Any]]:
    return [
        CommandHandler(sorted(CONSOLE.commands), on_command, filters=PRIVATE),
        CallbackQueryHandler(on_action, pattern=r"^a:"),
        MessageHandler(PRIVATE & filters.UpdateType.MESSAGE & filters.Document.ALL, on_document),
    ]
